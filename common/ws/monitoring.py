"""``/ws/monitoring/stream``: a numbered sample of the host and the platform, every
``MONITOR_INTERVAL_MS``.

A sample::

    {"seq": 12, "type": "sample", "ts": 1764316800.123, "interval_ms": 1000,
     "host": {"source", "cpu_percent", "cpu_count", "load_1m",
              "memory": {"total_bytes", "used_bytes", "percent"},
              "disk": {"path", "total_bytes", "used_bytes", "percent"},
              "network": {"bytes_sent", "bytes_recv", "sent_per_s", "recv_per_s"}},
     "requests": {"window_s", "count", "per_s", "p50_ms", "p99_ms",
                  "endpoints": {"/api/explain": {"count", "per_s", "errors", "p50_ms", "p99_ms"}}},
     "jobs": {"queued", "running", "oldest_queued_s"},
     "cache": {"hits", "misses", "hit_ratio"},
     "model": {"calls", "completion_tokens", "tokens_per_s"}}

``ts`` is when the sample was taken (just before it is published); request, cache
and model figures cover the last minute (:mod:`common.ws.metrics`); job figures
come from PostgreSQL, at most once a second. A figure that cannot be had is None.

One process samples (:class:`Leadership`, a Redis lock renewed each tick: a second
server process does not double the stream and takes over within three intervals
when the sampler dies); the sample is published once (Redis pub/sub) and every
server process fans it out to its own subscribers. On AWS a scheduled function
samples once a minute (Lambda cannot run a loop between invocations). One sample
every ``MONITOR_PERSIST_SECONDS`` goes to PostgreSQL's ``metrics`` table, whichever
process or function took it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.logs import get_logger
from common.ws.base import Outbox, WsConnection
from common.ws.metrics import WINDOW_S, WindowReader

if TYPE_CHECKING:
    from common.stores.postgres import PostgresStore
    from common.stores.redis_store import RedisStore
    from common.ws.host import HostSampler

log = get_logger("ws.monitoring")

ROUTE = "monitoring"
PATH = "/ws/monitoring/stream"
JOBS_REFRESH_S = 1.0
RETENTION_DAYS = 14  # metrics rows older than this are deleted when a sample is persisted


class MonitoringHandler:
    """The route: everything it sends is the sampler's numbered samples."""

    route = ROUTE
    path = PATH
    local_only = False
    # Without ?since a new client gets the latest sample at once, not in an interval.
    replay_without_since = 1

    async def connect(self, conn: WsConnection, out: Outbox) -> None:
        return None

    async def receive(self, conn: WsConnection, message: str | bytes, out: Outbox) -> None:
        return None  # a read-only stream: anything sent is ignored

    async def disconnect(self, conn: WsConnection, out: Outbox) -> None:
        return None


# -- the sample ---------------------------------------------------------------------


def job_figures(postgres: PostgresStore) -> dict[str, Any]:
    """Queue depth and the age of the oldest queued job (the (status, created_at) index)."""
    with postgres.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'queued') AS queued,"
            " count(*) FILTER (WHERE status = 'running') AS running,"
            " extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued'))"
            " AS oldest_queued_s"
            " FROM jobs WHERE status IN ('queued', 'running')"
        ).fetchone()
    row = row or {}
    oldest = row.get("oldest_queued_s")
    return {
        "queued": int(row.get("queued") or 0),
        "running": int(row.get("running") or 0),
        "oldest_queued_s": None if oldest is None else round(float(oldest), 3),
    }


_NO_JOBS = {"queued": None, "running": None, "oldest_queued_s": None}


class Sampler:
    """Takes samples (blocking: PostgreSQL, Redis, /proc; run it off the event loop).

    Parameters
    ----------
    redis:
        Where every process's request figures are (:class:`WindowReader`).
    postgres:
        Returns the PostgreSQL store (job figures); may raise when there is none.
    host:
        Host figures.
    interval_ms:
        Stated in each sample.
    """

    def __init__(
        self,
        *,
        redis: RedisStore,
        postgres: Callable[[], PostgresStore],
        host: HostSampler,
        interval_ms: int,
    ) -> None:
        self.window = WindowReader(redis)
        self._postgres = postgres
        self.host = host
        self.interval_ms = interval_ms
        self._jobs: dict[str, Any] = dict(_NO_JOBS)
        self._jobs_at = 0.0

    def _job_figures(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self._jobs_at >= JOBS_REFRESH_S:
            self._jobs_at = now
            try:
                self._jobs = job_figures(self._postgres())
            except Exception as exc:  # PostgreSQL away: the sample says None, not why
                log.warning("job figures unavailable", extra={"error": type(exc).__name__})
                self._jobs = dict(_NO_JOBS)
        return dict(self._jobs)

    def sample(self) -> dict[str, Any]:
        host = self.host.sample()
        jobs = self._job_figures()
        try:
            platform = self.window.read().figures(WINDOW_S)
        except Exception as exc:
            log.warning("request figures unavailable", extra={"error": type(exc).__name__})
            platform = {"requests": None, "cache": None, "model": None}
        return {
            "type": "sample",
            "ts": round(time.time(), 6),
            "interval_ms": self.interval_ms,
            "host": host,
            "requests": platform["requests"],
            "jobs": jobs,
            "cache": platform["cache"],
            "model": platform["model"],
        }


def make_sampler(interval_ms: int | None = None) -> Sampler:
    from common.config import get_settings
    from common.stores.postgres import get_postgres
    from common.stores.redis_store import get_redis
    from common.ws.host import HostSampler

    settings = get_settings()
    data_dir = settings.DATA_DIR.expanduser()
    disk = data_dir if data_dir.exists() else Path("/")
    return Sampler(
        redis=get_redis(),
        postgres=get_postgres,
        host=HostSampler(disk),
        interval_ms=interval_ms or settings.MONITOR_INTERVAL_MS,
    )


# -- who samples, when to persist ----------------------------------------------------

# 1 when this token holds (or now took) the lock; its TTL renewed either way.
_HOLD = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Leadership:
    """A Redis lock one process holds while it keeps renewing it."""

    def __init__(self, redis: RedisStore, name: str, *, ttl_ms: int) -> None:
        self.redis = redis
        self.key = redis.key("ws", "leader", name)
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex
        self._script = redis.client.register_script(_HOLD)

    def hold(self) -> bool:
        return bool(int(self._script(keys=[self.key], args=[self.token, self.ttl_ms])))

    def release(self) -> None:
        if self.redis.client.get(self.key) == self.token.encode():
            self.redis.client.delete(self.key)


def persist_due(redis: RedisStore, persist_s: float) -> bool:
    """True at most once per ``persist_s`` across every process (a SET NX that expires)."""
    if persist_s <= 0:
        return False
    # 90 %: a schedule that fires every persist_s (the AWS tick) never finds it still set.
    ttl_ms = max(1, int(persist_s * 900))
    return bool(redis.client.set(redis.key("ws", "monitor", "persisted"), "1", nx=True, px=ttl_ms))


# -- PostgreSQL's metrics table ------------------------------------------------------

_PARTS = ("host", "requests", "jobs", "cache", "model")


def flatten(sample: dict[str, Any]) -> Iterator[tuple[str, float, dict[str, str]]]:
    """A sample as ``(name, value, labels)`` rows: dotted names for numbers
    (``host.memory.percent``), per-endpoint figures as ``requests.endpoint.<figure>``
    labelled ``{"endpoint": path}``. Strings and None are not stored."""

    def walk(prefix: str, value: Any) -> Iterator[tuple[str, float, dict[str, str]]]:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return
        if isinstance(value, int | float):
            yield prefix, float(value), {}
        elif isinstance(value, dict):
            for key, inner in value.items():
                if prefix == "requests" and key == "endpoints":
                    for endpoint, figures in inner.items():
                        for name, number in figures.items():
                            if isinstance(number, int | float) and not isinstance(number, bool):
                                yield (
                                    f"requests.endpoint.{name}",
                                    float(number),
                                    {"endpoint": endpoint},
                                )
                else:
                    yield from walk(f"{prefix}.{key}", inner)

    for part in _PARTS:
        yield from walk(part, sample.get(part))


def unflatten(rows: list[tuple[str, float, dict[str, Any]]]) -> dict[str, Any]:
    """The inverse of :func:`flatten` (the numbers of a sample)."""
    sample: dict[str, Any] = {}
    for name, value, labels in rows:
        if name.startswith("requests.endpoint.") and "endpoint" in labels:
            endpoints = sample.setdefault("requests", {}).setdefault("endpoints", {})
            endpoints.setdefault(labels["endpoint"], {})[name.rsplit(".", 1)[1]] = value
            continue
        node = sample
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return sample


def _names() -> list[str]:
    # The names this module writes (for retention): every leaf of an example sample.
    return sorted({name for name, _, _ in flatten(_example())})


def _example() -> dict[str, Any]:
    endpoint = {"count": 0, "per_s": 0, "errors": 0, "p50_ms": 0, "p99_ms": 0}
    return {
        "host": {
            "cpu_percent": 0,
            "cpu_count": 0,
            "load_1m": 0,
            "memory": {"total_bytes": 0, "used_bytes": 0, "percent": 0},
            "disk": {"total_bytes": 0, "used_bytes": 0, "percent": 0},
            "network": {"bytes_sent": 0, "bytes_recv": 0, "sent_per_s": 0, "recv_per_s": 0},
        },
        "requests": {
            "window_s": 0,
            "count": 0,
            "per_s": 0,
            "p50_ms": 0,
            "p99_ms": 0,
            "endpoints": {"/": endpoint},
        },
        "jobs": {"queued": 0, "running": 0, "oldest_queued_s": 0},
        "cache": {"hits": 0, "misses": 0, "hit_ratio": 0},
        "model": {"calls": 0, "completion_tokens": 0, "tokens_per_s": 0},
    }


class MetricsStore:
    """Samples in the ``metrics`` table (migration 0001): one row per figure, all
    rows of a sample sharing its ``ts``."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

    def insert(self, sample: dict[str, Any]) -> int:
        from psycopg.types.json import Jsonb

        ts = datetime.fromtimestamp(float(sample["ts"]), UTC)
        rows = [(ts, name, value, Jsonb(labels)) for name, value, labels in flatten(sample)]
        with self.postgres.connection() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO metrics (ts, name, value, labels) VALUES (%s, %s, %s, %s)", rows
                )
            conn.execute(
                "DELETE FROM metrics WHERE ts < now() - make_interval(days => %s)"
                " AND name = ANY(%s)",
                (RETENTION_DAYS, _names()),
            )
        return len(rows)

    def window(self, minutes: int) -> list[dict[str, Any]]:
        """The persisted samples of the last ``minutes``, oldest first."""
        with self.postgres.connection() as conn:
            rows = conn.execute(
                "SELECT ts, name, value, labels FROM metrics"
                " WHERE ts > now() - make_interval(mins => %s) AND name = ANY(%s)"
                " ORDER BY ts, id",
                (minutes, _names()),
            ).fetchall()
        by_ts: dict[datetime, list[tuple[str, float, dict[str, Any]]]] = {}
        for row in rows:
            by_ts.setdefault(row["ts"], []).append((row["name"], row["value"], row["labels"]))
        return [
            {"ts": ts.timestamp(), **unflatten(figures)} for ts, figures in sorted(by_ts.items())
        ]


def get_metrics(minutes: int) -> dict[str, Any]:
    """``GET /api/metrics``: the latest sample (live, from the monitoring stream; else
    the latest persisted one) and the persisted samples of the last ``minutes``.

    Raises
    ------
    StoreUnavailable
        PostgreSQL is unreachable.
    """
    from common.errors import StoreUnavailable
    from common.stores.postgres import get_postgres
    from common.ws.events import get_event_log

    samples = MetricsStore(get_postgres()).window(minutes)
    latest: dict[str, Any] | None = None
    try:
        last = get_event_log().last(ROUTE, None, 1)
        latest = json.loads(last[0].text) if last else None
    except Exception as exc:  # Redis away or not configured: the persisted one will do
        if not isinstance(exc, StoreUnavailable):
            log.warning("latest sample unavailable", extra={"error": type(exc).__name__})
    if latest is None and samples:
        latest = samples[-1]
    return {"latest": latest, "window": {"minutes": minutes, "samples": samples}}


# -- one tick, for both doors ------------------------------------------------------


async def publish_sample(
    sampler: Sampler, out: Outbox, *, redis: RedisStore, persist_s: float
) -> dict[str, Any]:
    """Take a sample, publish it on the monitoring stream, persist it when due."""
    sample = await asyncio.to_thread(sampler.sample)
    sample["seq"] = await out.publish(ROUTE, None, sample)
    if await asyncio.to_thread(persist_due, redis, persist_s):
        from common.stores.postgres import get_postgres

        try:
            await asyncio.to_thread(lambda: MetricsStore(get_postgres()).insert(sample))
        except Exception as exc:
            log.warning("sample not persisted", extra={"error": type(exc).__name__})
    return sample
