"""Importing a handler must not import the heavy clients: a cold start pays for every import.

Each check runs in a fresh interpreter (this process has imported everything already).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
HEAVY = ("qdrant_client", "ollama", "boto3", "botocore", "pymongo")

# Imports we do not control, with the module that makes them. Powertools' package
# __init__ probes `import botocore` to add its User-Agent hook (aws_lambda_powertools/
# shared/user_agent.py); on Lambda botocore is in the runtime, and its top level is cheap.
ALLOWED = {"botocore": "aws_lambda_powertools/shared/user_agent.py"}

# Records, for each heavy top-level package, the first file that imported it.
PROBE = """
import importlib, json, sys

HEAVY = set(json.loads(sys.argv[2]))
importers = {}

class WhoImports:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in importers:
            frame = sys._getframe(1)
            while frame and frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            importers[top] = frame.f_code.co_filename if frame else "?"
        return None

sys.meta_path.insert(0, WhoImports())
importlib.import_module(f"functions.{sys.argv[1]}.handler")
loaded = {m: importers.get(m, "?") for m in HEAVY if m in sys.modules}
print("COLD-START " + json.dumps(loaded))
"""


def _imported_by_handler(name: str) -> dict[str, str]:
    env = {**os.environ, "ENV_FILE": "", "LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, name, json.dumps(HEAVY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("COLD-START "))
    loaded: dict[str, str] = json.loads(line.removeprefix("COLD-START "))
    return loaded


def test_there_are_handlers() -> None:
    assert HANDLERS


@pytest.mark.parametrize("name", HANDLERS)
def test_handler_import_leaves_heavy_clients_unloaded(name: str) -> None:
    # Given a fresh interpreter; When it imports functions/<name>/handler.py
    loaded = _imported_by_handler(name)
    # Then no heavy client was imported, except by the known third-party probe
    unexpected = {
        module: importer
        for module, importer in loaded.items()
        if not Path(importer).as_posix().endswith(ALLOWED.get(module, "\0"))
    }
    assert unexpected == {}, f"functions/{name}/handler.py imports at cold start: {unexpected}"
