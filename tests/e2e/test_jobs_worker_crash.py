"""A worker process killed mid-job: another one reclaims the job, which finishes once.

Workers are real ``python -m common.worker`` processes on the run's stores, with
their own job stream (a key prefix inside the run's) so no other worker takes part.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = "1.5"


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "common.worker", "--concurrency", "1", "--grace", "1"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def runs_of(self, job_id: UUID) -> int:
        return sum(
            1
            for e in self.lines()
            if e.get("message") == "job ran" and e.get("job_id") == str(job_id)
        )

    def wait_started(self, timeout_s: float = 30) -> None:
        wait_for(
            lambda: (
                any(e.get("message") == "job worker started" for e in self.lines())
                or self.process.poll() is not None
            ),
            timeout_s,
        )
        assert self.process.poll() is None, self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(20)
        finally:
            self._log.close()
        return code


def wait_for(check: Callable[[], Any], timeout_s: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


@pytest.fixture
def worker_env(base_env: dict[str, str], set_env: Callable[..., None]) -> dict[str, str]:
    """This test's environment, in this process (to submit) and for its workers."""
    prefix = base_env.get("REDIS_KEY_PREFIX", "ao:") + f"crash{uuid.uuid4().hex[:8]}:"
    limits = {
        "REDIS_KEY_PREFIX": prefix,
        "JOB_LEASE_SECONDS": LEASE_S,
        "JOB_RECLAIM_IDLE_SECONDS": "1",
        "JOB_SWEEP_SECONDS": "0",  # the shared database may hold other tests' jobs
        "JOB_QUEUE_URL": "",
    }
    set_env(**limits)
    return {**os.environ, **base_env, **limits, "LOG_LEVEL": "INFO", "ENV_FILE": ""}


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(worker_env, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        worker.wait_started()
        return worker

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


def test_a_job_whose_worker_is_killed_finishes_exactly_once(
    api_key: str, workers: Callable[[], WorkerProcess]
) -> None:
    from common.auth import authenticate
    from common.jobs import get_job, submit_job
    from common.jobs.queue import RedisStreamQueue
    from common.jobs.store import get_job_store
    from common.stores.postgres import get_postgres
    from common.stores.redis_store import get_redis

    principal = authenticate(api_key, store=get_postgres())
    store = get_job_store()
    # Given a worker running a job that takes a few seconds
    first = workers()
    job_id = submit_job(kind="noop", input={"sleep_s": 3}, principal=principal).job_id
    running = wait_for(lambda: (r := store.get_row(job_id)) and r["status"] == "running" and r)
    assert f":{first.pid}:" in running["worker"]
    time.sleep(0.5)
    # When that worker is killed mid-job (no chance to clean up), and another starts
    first.stop(signal.SIGKILL)
    assert store.get_row(job_id)["status"] == "running"  # type: ignore[index]
    second = workers()
    # Then the second worker reclaims the entry and runs the job to the end
    view = wait_for(
        lambda: (v := get_job(job_id, principal=principal)).status == "succeeded" and v,
        timeout_s=30,
        what="the job to succeed on the second worker",
    )
    final = store.get_row(job_id)
    assert final is not None and f":{second.pid}:" in final["worker"]
    assert view.attempts == 2 and view.result == {"slept_s": view.result["slept_s"], "attempt": 2}
    # And it ran to its end exactly once: never on the killed worker, once on the other
    wait_for(lambda: RedisStreamQueue(get_redis()).pending() == 0, what="the entry acknowledged")
    time.sleep(float(LEASE_S))  # room for a wrong second run to show up
    assert (first.runs_of(job_id), second.runs_of(job_id)) == (0, 1)
    assert store.get_row(job_id)["attempts"] == 2  # type: ignore[index]
    # And the surviving worker stops cleanly on SIGTERM
    assert second.stop() == 0


def test_the_worker_command_needs_stores(tmp_path: Path) -> None:
    from tests.utils.stores import environ_without_stores

    env = {**environ_without_stores(), "DATA_DIR": str(tmp_path), "ENV_FILE": ""}
    done = subprocess.run(
        [sys.executable, "-m", "common.worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DATABASE_URL and REDIS_URL not set" in done.stderr
    assert "make run" in done.stderr


def test_the_local_server_runs_jobs_and_serves_them(server: Any, api_key: str) -> None:
    import httpx

    from common.auth import authenticate
    from common.jobs import submit_job
    from common.stores.postgres import get_postgres

    # Given a job queued on the run's stream (the server's worker reads it)
    principal = authenticate(api_key, store=get_postgres())
    job_id = submit_job(kind="noop", input={"sleep_s": 0.2}, principal=principal).job_id
    headers = {"X-API-Key": api_key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        # When its status is read over HTTP until it is done
        body = wait_for(
            lambda: (b := client.get(f"/api/jobs/{job_id}").json())["status"] == "succeeded" and b,
            what="the server's worker to run the job",
        )
        # Then the result is there, and a DELETE of a finished job changes nothing
        assert body["result"]["attempt"] == 1 and body["progress"]["percent"] == 100.0
        cancelled = client.delete(f"/api/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "succeeded"
        missing = client.get(f"/api/jobs/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
