"""Monitoring, job progress and the refusals over real WebSockets, against the local
server, and GET /api/metrics over HTTP.

The server is this module's own: a 100 ms monitoring interval, samples persisted
every second, and a Redis key prefix of its own (so its sampler, job worker and
streams are not shared with the session's server); this process submits jobs under
the same prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.utils.server import LocalServer

T = TypeVar("T")
INTERVAL_MS = 100
SAMPLE_FIELDS = {
    "seq": None,
    "type": None,
    "ts": None,
    "interval_ms": None,
    "host": {"source", "cpu_percent", "cpu_count", "load_1m", "memory", "disk", "network"},
    "requests": {"window_s", "count", "per_s", "p50_ms", "p99_ms", "endpoints"},
    "jobs": {"queued", "running", "oldest_queued_s"},
    "cache": {"hits", "misses", "hit_ratio"},
    "model": {"calls", "completion_tokens", "tokens_per_s"},
}


def run(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()  # not asyncio.run: it unsets the thread's loop
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


@pytest.fixture(scope="module")
def prefix(base_env: dict[str, str]) -> str:
    return base_env.get("REDIS_KEY_PREFIX", "ao:") + f"ws{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="module")
def ws_server(
    base_env: dict[str, str],
    _session_env: None,
    prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalServer]:
    folder = tmp_path_factory.mktemp("ws-local")
    env = {
        **os.environ,
        **base_env,
        "DATA_DIR": str(folder),
        "QDRANT_PATH": str(folder / "qdrant"),
        "REDIS_KEY_PREFIX": prefix,
        "MONITOR_INTERVAL_MS": str(INTERVAL_MS),
        "MONITOR_PERSIST_SECONDS": "1",
        "JOB_QUEUE_URL": "",
        "JOB_SWEEP_SECONDS": "0",  # the shared database may hold other tests' jobs
    }
    local = LocalServer(env, folder / "server.log").start()
    yield local
    local.stop()


@pytest.fixture
def jobs_here(set_env: Callable[..., None], prefix: str) -> None:
    """This process submits jobs to the module server's queue (its key prefix)."""
    set_env(REDIS_KEY_PREFIX=prefix, JOB_QUEUE_URL="")


def ws_url(server: LocalServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


async def close_of(ws: ClientConnection, timeout_s: float = 5) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    async with asyncio.timeout(timeout_s):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


def submit_noop(api_key: str, sleep_s: float) -> str:
    from common.auth import authenticate
    from common.jobs import submit_job
    from common.stores.postgres import get_postgres

    principal = authenticate(api_key, store=get_postgres())
    job = submit_job(kind="noop", input={"sleep_s": sleep_s}, principal=principal)
    return str(job.job_id)


@pytest.fixture
def other_key(stores: None) -> str:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    return create_key(store=get_postgres(), name="pytest-other").key


def test_a_wrong_or_missing_key_is_closed_with_4401(ws_server: LocalServer) -> None:
    async def main() -> list[tuple[int, str]]:
        closes = []
        path = "/ws/monitoring/stream"
        wrong = "ao_abcdefgh_" + "x" * 43
        async with connect(ws_url(ws_server, path), additional_headers={"X-API-Key": wrong}) as ws:
            closes.append(await close_of(ws))
        async with connect(ws_url(ws_server, f"{path}?api_key={wrong}")) as ws:
            closes.append(await close_of(ws))
        async with connect(ws_url(ws_server, path)) as ws:
            closes.append(await close_of(ws))
        return closes

    closes = run(main())
    assert closes[0] == (4401, "invalid API key")
    assert closes[1] == (4401, "invalid API key")
    assert closes[2][0] == 4401 and "missing API key" in closes[2][1]
    # The key sent in the query never reaches the server's log (uvicorn logs the URL)
    assert "x" * 43 not in ws_server.logs()


def test_another_keys_job_is_refused_like_a_missing_one(
    ws_server: LocalServer, jobs_here: None, api_key: str, other_key: str
) -> None:
    job_id = submit_noop(api_key, 0)

    async def main() -> list[tuple[int, str]]:
        closes = []
        for job, key in ((job_id, other_key), (str(uuid.uuid4()), api_key)):
            url = ws_url(ws_server, f"/ws/jobs/{job}")
            async with connect(url, additional_headers={"X-API-Key": key}) as ws:
                closes.append(await close_of(ws))
        return closes

    other, missing = run(main())
    # 4404 for both: as over HTTP, a job id says nothing about whether it exists
    assert other == (4404, f"no job {job_id}")
    assert missing[0] == 4404


def test_monitoring_delivers_numbered_samples_with_every_field(
    ws_server: LocalServer, api_key: str
) -> None:
    async def main() -> list[tuple[float, dict[str, Any]]]:
        got = []
        url = ws_url(ws_server, f"/ws/monitoring/stream?api_key={api_key}")
        async with connect(url) as ws:
            async with asyncio.timeout(10):
                while len(got) < 5:
                    got.append((time.time(), json.loads(await ws.recv())))
        return got

    httpx.get(ws_server.url + "/api/health", timeout=10)  # a request for the figures
    received = run(main())
    samples = [s for _, s in received]
    # The first is the latest sample (sent at once), then each new one, in order, no gap
    seqs = [s["seq"] for s in samples]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    for sample in samples:
        for part, fields in SAMPLE_FIELDS.items():
            assert part in sample, part
            if fields:
                assert fields <= set(sample[part]), (part, sample[part])
        assert sample["type"] == "sample" and sample["interval_ms"] == INTERVAL_MS
        assert sample["host"]["memory"]["percent"] > 0
        assert sample["jobs"]["queued"] is not None
    # Live samples arrive within an interval of being taken (same machine's clock)
    lags = [at - s["ts"] for at, s in received[1:]]
    assert max(lags) < 0.5, lags
    gaps = [b["ts"] - a["ts"] for a, b in zip(samples[1:], samples[2:], strict=False)]
    assert all(0.05 < g < 0.5 for g in gaps), gaps


def test_reconnecting_with_since_gets_the_missed_events_once(
    ws_server: LocalServer, jobs_here: None, api_key: str
) -> None:
    # Given a job that reports progress every 0.1 s for 2 s
    job_id = submit_noop(api_key, 2.0)
    url = ws_url(ws_server, f"/ws/jobs/{job_id}")
    headers = {"X-API-Key": api_key}

    async def first_part() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with connect(url, additional_headers=headers) as ws:
            async with asyncio.timeout(15):
                while len([e for e in events if "seq" in e]) < 5:
                    events.append(json.loads(await ws.recv()))
        return events

    async def second_part(since: int) -> tuple[list[dict[str, Any]], tuple[int, str]]:
        frames: list[dict[str, Any]] = []
        async with connect(f"{url}?since={since}", additional_headers=headers) as ws:
            async with asyncio.timeout(15):
                try:
                    while True:
                        frames.append(json.loads(await ws.recv()))
                except ConnectionClosed:
                    pass
            return frames, (ws.close_code or 0, ws.close_reason or "")

    # When a client reads some events, goes away for a while, and reconnects with since
    before = first_part_events = run(first_part())
    last = max(e["seq"] for e in before if "seq" in e)
    time.sleep(0.5)
    after, close = run(second_part(last))
    # Then it gets every event after `since`, once, in order, then the final state
    numbered = [f["seq"] for f in after if "seq" in f]
    assert numbered and numbered[0] == last + 1, (last, numbered)
    assert numbered == list(range(last + 1, last + 1 + len(numbered)))
    assert all(f["job_id"] == job_id for f in after if "seq" in f)
    states = [f for f in after if f.get("type") == "state"]
    assert states[-1]["job"]["status"] == "succeeded" and after[-1] is states[-1]
    statuses = [f["status"] for f in after if f.get("type") == "status"]
    assert statuses[-1] == "succeeded"
    assert close == (1000, "job succeeded")
    # And the first connection started from the job's first event
    assert [e["seq"] for e in first_part_events if "seq" in e][0] == 1


def test_metrics_gives_the_latest_sample_and_a_window(ws_server: LocalServer, api_key: str) -> None:
    headers = {"X-API-Key": api_key}
    with httpx.Client(base_url=ws_server.url, headers=headers, timeout=10) as client:
        for _ in range(3):
            client.get("/api/health")
        deadline = time.monotonic() + 10
        while True:
            response = client.get("/api/metrics", params={"minutes": 5})
            body = response.json()
            assert response.status_code == 200, body
            latest = body["latest"]
            endpoints = (latest or {}).get("requests", {}).get("endpoints", {})
            health = endpoints.get("/api/health", {}).get("count", 0)
            if body["window"]["samples"] and health >= 3:  # flushed every second
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert latest["seq"] > 0 and latest["type"] == "sample"
        assert endpoints["/api/health"]["count"] >= 3
        assert endpoints["/api/health"]["p99_ms"] >= endpoints["/api/health"]["p50_ms"] > 0
        persisted = body["window"]["samples"][-1]
        assert persisted["host"]["memory"]["percent"] > 0 and "jobs" in persisted
        missing = httpx.get(ws_server.url + "/api/metrics", timeout=10)
        assert missing.status_code == 401
        assert client.get("/api/metrics", params={"minutes": 0}).status_code == 422
