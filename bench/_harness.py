"""What the benches share: the Ollama double, a local server on fresh embedded stores, a key."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.ollama import FakeOllama  # noqa: E402, F401 - re-exported for the benches
from tests.utils.server import LocalServer  # noqa: E402
from tests.utils.stores import environ_without_stores  # noqa: E402


@contextmanager
def fake_ollama_process(tokens: int, gap_ms: float, embed_dim: int | None = None) -> Iterator[str]:
    """The Ollama double in its own process, every answer ``tokens`` pieces ``gap_ms`` apart.

    ``embed_dim``: ``/api/embed`` answers at once with vectors of that length.
    """
    extra = [str(embed_dim)] if embed_dim else []
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_fake_ollama.py"), str(tokens), str(gap_ms), *extra],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(10)


@contextmanager
def bench_server(ollama_url: str, **env: str) -> Iterator[tuple[LocalServer, str]]:
    """A local server on its own embedded stores talking to ``ollama_url``, and an API key."""
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        base = {
            **environ_without_stores(),
            "DATA_DIR": folder,
            "OLLAMA_HOST": ollama_url,
            "MODEL_PROVIDER": "ollama",
            # Counted (it is on in production: one Redis round trip per request or
            # batch) but never reached, whatever the bench sends.
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "LOG_LEVEL": "WARNING",
            "ENV_FILE": "",
            **env,
        }
        server = LocalServer(base, Path(folder) / "server.log").start()
        try:
            key = subprocess.run(
                [sys.executable, "-m", "common.cli", "keys", "create", "--name", "bench"],
                cwd=ROOT,
                env=base,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            yield server, key
        except BaseException:
            print(server.logs()[-4000:], file=sys.stderr)
            raise
        finally:
            server.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50):8.2f} ms   p99 {percentile(values, 99):8.2f} ms"
        f"   mean {statistics.fmean(values):8.2f} ms   n={len(values)}"
    )


def cpu_count() -> int:
    return os.cpu_count() or 1
