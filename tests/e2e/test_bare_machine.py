"""`make run` on a laptop with no servers: four embedded stores, no Ollama.

The server must start, say exactly what is missing and how to fix it, stop every
embedded server on Ctrl-C, and find its data again on the next start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.utils.server import ROOT, LocalServer
from tests.utils.stores import closed_port_url, environ_without_stores


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "common.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def log_events(log: str, message: str) -> list[dict]:  # type: ignore[type-arg]
    events = []
    for line in log.splitlines():
        if line.startswith("{") and f'"message":"{message}"' in line:
            events.append(json.loads(line))
    return events


@pytest.mark.slow
def test_bare_machine_serves_explains_the_fix_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        **environ_without_stores(),
        "DATA_DIR": str(data_dir),
        "OLLAMA_HOST": closed_port_url(),
        # "auto" would fall back to the embedded model when its extra is installed;
        # this test is about the 503 a laptop without any model gets.
        "MODEL_PROVIDER": "ollama",
        "OLLAMA_CONNECT_TIMEOUT": "1",
        "ENV_FILE": "",
    }
    server = LocalServer(env, tmp_path / "server.log").start()
    try:
        health = httpx.get(server.url + "/api/health", timeout=15)
        body = health.json()
        assert health.status_code == 503
        assert body["down"] == ["model"]
        for store in ("postgres", "redis", "mongodb", "qdrant"):
            assert body["checks"][store]["status"] == "up", body
        assert "OLLAMA_HOST" in body["checks"]["model"]["error"]
        assert body["checks"]["model"]["fix"] == "ollama serve"

        # The CLI finds the server's embedded PostgreSQL through DATA_DIR.
        created = cli(env, "keys", "create", "--name", "laptop")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()

        explain = httpx.post(
            server.url + "/api/explain",
            headers={"X-API-Key": key},
            json={"code": "print(1)"},
            timeout=30,
        )
        assert explain.status_code == 503
        assert explain.json()["error"]["code"] == "model_unavailable"
        assert "OLLAMA_HOST" in explain.json()["error"]["message"]
    finally:
        exit_code = server.stop()
    log = server.logs()
    assert exit_code == 0, log
    assert log_events(log, "stopped")

    # Every embedded server is gone.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    redis_pid = log_events(log, "embedded Redis up")[0]["pid"]
    assert not psutil.pid_exists(redis_pid)
    mongo_port = log_events(log, "embedded MongoDB-protocol server up")[0]["port"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{mongo_port}", timeout=2)

    # Start again on the same DATA_DIR: the key is still there.
    again = LocalServer(env, tmp_path / "server2.log").start()
    try:
        migrated = log_events(again.logs(), "applied migrations")
        assert migrated == []  # nothing to apply: the schema survived
        response = httpx.post(
            again.url + "/api/explain",
            headers={"X-API-Key": key},
            json={"code": "print(1)"},
            timeout=30,
        )
        assert response.status_code == 503  # authenticated; only the model is missing
        revoked = cli(env, "keys", "revoke", key.split("_")[1])
        assert revoked.returncode == 0, revoked.stderr
        response = httpx.post(
            again.url + "/api/explain",
            headers={"X-API-Key": key},
            json={"code": "print(1)"},
            timeout=30,
        )
        assert response.status_code == 401
    finally:
        assert again.stop() == 0


def test_malformed_setting_stops_the_server_with_one_line(tmp_path: Path) -> None:
    env = {
        **environ_without_stores(),
        "DATA_DIR": str(tmp_path),
        "MAX_BODY_BYTES": "big",
        "ENV_FILE": "",
    }

    result = subprocess.run(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid configuration: MAX_BODY_BYTES: Input should be a valid integer,"
        " unable to parse string as an integer"
    ]
    assert not (tmp_path / "postgres").exists()  # nothing started
