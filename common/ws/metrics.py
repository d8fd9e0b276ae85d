"""The platform's own figures: requests and latency per endpoint, cache hits, model speed.

Hot path: :func:`record_request` (called by the HTTP middleware once per request)
appends one tuple to a bounded deque and returns: no lock, no I/O, no maths.

Per process: a daemon thread (:class:`Flusher`, started on the first record) wakes
every second, turns what was recorded into per-endpoint latency histograms and
adds them to the current second's hash in Redis (one pipeline). Every process
writes there (the local server, each Lambda instance, a second server), so the
sampler, wherever it runs, reads one merged figure: :class:`WindowReader` sums the
last :data:`WINDOW_S` seconds of hashes and takes p50/p99 from the merged histogram.

Latency histograms are logarithmic (each bucket 5 % wider than the one before,
from 0.1 ms): percentiles are exact to within 5 %, they merge across processes by
adding counts, and their size does not grow with traffic.

On Lambda a function is frozen between invocations: what an instance recorded
reaches Redis when its thread next runs (during a later invocation), and is lost
if the instance is reclaimed first. CloudWatch's own metrics stay the record there.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.stores.redis_store import RedisStore

WINDOW_S = 60  # the figures of a sample cover the last minute
FLUSH_S = 1.0
SLOT_TTL_S = WINDOW_S * 3
MAX_PENDING = 100_000  # about a second and a half of a very busy process; oldest dropped

_BASE_MS = 0.1
_GROWTH = 1.05
_LOG_GROWTH = math.log(_GROWTH)


def bucket_of(ms: float) -> int:
    """The histogram bucket of a latency: bucket ``i`` holds (0.1·1.05^(i-1), 0.1·1.05^i] ms."""
    if ms <= _BASE_MS:
        return 0
    return math.ceil(math.log(ms / _BASE_MS) / _LOG_GROWTH - 1e-9)


def bucket_upper_ms(bucket: int) -> float:
    return _BASE_MS * _GROWTH**bucket


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of a histogram, as its bucket's upper bound."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return round(bucket_upper_ms(bucket), 3)
    return round(bucket_upper_ms(max(histogram)), 3)  # pragma: no cover - rank <= total


# -- the hot path -------------------------------------------------------------------

# (endpoint, status, ms, cache hits, cache misses); deque.append is atomic, and a full
# deque drops its oldest entry instead of growing when Redis is away.
_requests: deque[tuple[str, int, float, int, int]] = deque(maxlen=MAX_PENDING)
# (completion tokens, generation ms, answered from the cache)
_model_calls: deque[tuple[int, float, bool]] = deque(maxlen=MAX_PENDING)
_flusher: Flusher | None = None
_start_lock = threading.Lock()


def record_request(
    endpoint: str, status: int, ms: float, cache_hits: int, cache_misses: int
) -> None:
    """One finished HTTP request (the middleware calls this; keep it this cheap)."""
    _requests.append((endpoint, status, ms, cache_hits, cache_misses))
    if _flusher is None:
        start_flusher()


def record_model_call(completion_tokens: int, duration_ms: float, *, cached: bool = False) -> None:
    """One model answer: its completion tokens and how long it took.

    Meant to be called by the model client for each answer, cached or not
    (``CachedModelClient.chat`` in :mod:`common.models.cache`, with its
    ``ChatResult.usage.completion_tokens``, ``duration_ms`` and ``cached``). Until that
    call is there, the samples' ``model`` figures stay at 0 calls and None tokens/s.
    Answers from the cache count as calls but not in tokens per second.
    """
    _model_calls.append((completion_tokens, duration_ms, cached))
    if _flusher is None:
        start_flusher()


def start_flusher() -> Flusher:
    """This process's flusher thread (started once)."""
    global _flusher
    with _start_lock:
        if _flusher is None:
            _flusher = Flusher()
            _flusher.start()
        return _flusher


def _drain(queue: deque[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(queue.popleft())
        except IndexError:
            return items


def aggregate(
    requests: Iterable[tuple[str, int, float, int, int]],
    model_calls: Iterable[tuple[int, float, bool]] = (),
) -> dict[str, int]:
    """The hash fields one flush adds: ``r|<endpoint>|<bucket>`` counts, ``e|<endpoint>``
    server errors, ``c|h``/``c|m`` cache hits and misses, ``t|calls``, ``t|tok`` and
    ``t|ms`` for model answers."""
    fields: dict[str, int] = {}
    for endpoint, status, ms, hits, misses in requests:
        name = f"r|{endpoint}|{bucket_of(ms)}"
        fields[name] = fields.get(name, 0) + 1
        if status >= 500:
            fields[f"e|{endpoint}"] = fields.get(f"e|{endpoint}", 0) + 1
        if hits:
            fields["c|h"] = fields.get("c|h", 0) + hits
        if misses:
            fields["c|m"] = fields.get("c|m", 0) + misses
    for tokens, ms, cached in model_calls:
        fields["t|calls"] = fields.get("t|calls", 0) + 1
        if not cached:
            fields["t|tok"] = fields.get("t|tok", 0) + tokens
            fields["t|ms"] = fields.get("t|ms", 0) + round(ms)
    return fields


def slot_key(redis: RedisStore, slot: int) -> str:
    return redis.key("ws", "m", str(slot))


class Flusher(threading.Thread):
    """Moves this process's records to Redis every :data:`FLUSH_S` seconds."""

    def __init__(self) -> None:
        super().__init__(name="metrics-flusher", daemon=True)
        self._stop_event = threading.Event()
        self._warned = False

    def run(self) -> None:
        while not self._stop_event.wait(FLUSH_S):
            self.flush()

    def stop(self) -> None:
        self._stop_event.set()

    def flush(self) -> None:
        requests = _drain(_requests)
        calls = _drain(_model_calls)
        if not requests and not calls:
            return
        fields = aggregate(requests, calls)
        try:
            from common.stores.redis_store import get_redis

            redis = get_redis()
            key = slot_key(redis, int(time.time()))
            pipe = redis.client.pipeline(transaction=False)
            for name, count in fields.items():
                pipe.hincrby(key, name, count)
            pipe.expire(key, SLOT_TTL_S)
            pipe.execute()
            self._warned = False
        except Exception as exc:  # no Redis here (a unit test, a Lambda without one): drop
            if not self._warned:
                self._warned = True
                from common.logs import get_logger

                get_logger("ws.metrics").warning(
                    "platform metrics not written; dropping them until Redis answers",
                    extra={"error": type(exc).__name__},
                )


# -- reading the window ------------------------------------------------------------


@dataclass
class EndpointFigures:
    count: int = 0
    errors: int = 0
    histogram: dict[int, int] = field(default_factory=dict)


@dataclass
class WindowTotals:
    """The merged figures of a window of slots."""

    endpoints: dict[str, EndpointFigures] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    model_calls: int = 0
    model_tokens: int = 0
    model_ms: int = 0

    def add(self, fields: dict[str, int]) -> None:
        for name, count in fields.items():
            kind, _, rest = name.partition("|")
            if kind == "r":
                endpoint, _, bucket = rest.rpartition("|")
                figures = self.endpoints.setdefault(endpoint, EndpointFigures())
                figures.count += count
                figures.histogram[int(bucket)] = figures.histogram.get(int(bucket), 0) + count
            elif kind == "e":
                self.endpoints.setdefault(rest, EndpointFigures()).errors += count
            elif name == "c|h":
                self.cache_hits += count
            elif name == "c|m":
                self.cache_misses += count
            elif name == "t|calls":
                self.model_calls += count
            elif name == "t|tok":
                self.model_tokens += count
            elif name == "t|ms":
                self.model_ms += count

    def figures(self, window_s: float) -> dict[str, Any]:
        """The ``requests``, ``cache`` and ``model`` parts of a sample."""
        endpoints: dict[str, Any] = {}
        total = 0
        merged: dict[int, int] = {}
        for name in sorted(self.endpoints):
            fig = self.endpoints[name]
            total += fig.count
            for bucket, count in fig.histogram.items():
                merged[bucket] = merged.get(bucket, 0) + count
            endpoints[name] = {
                "count": fig.count,
                "per_s": round(fig.count / window_s, 3),
                "errors": fig.errors,
                "p50_ms": percentile(fig.histogram, 50),
                "p99_ms": percentile(fig.histogram, 99),
            }
        looked_up = self.cache_hits + self.cache_misses
        return {
            "requests": {
                "window_s": window_s,
                "count": total,
                "per_s": round(total / window_s, 3),
                "p50_ms": percentile(merged, 50),
                "p99_ms": percentile(merged, 99),
                "endpoints": endpoints,
            },
            "cache": {
                "hits": self.cache_hits,
                "misses": self.cache_misses,
                "hit_ratio": round(self.cache_hits / looked_up, 4) if looked_up else None,
            },
            "model": {
                "calls": self.model_calls,
                "completion_tokens": self.model_tokens,
                "tokens_per_s": (
                    round(self.model_tokens / (self.model_ms / 1000), 2) if self.model_ms else None
                ),
            },
        }


class WindowReader:
    """Reads the last ``window_s`` seconds of slots; slots a few seconds old no longer
    change (every flusher writes within about a second), so they are read once and
    kept, and each sample reads only the newest few."""

    SETTLED_S = 3

    def __init__(self, redis: RedisStore, *, window_s: int = WINDOW_S) -> None:
        self.redis = redis
        self.window_s = window_s
        self._settled: dict[int, dict[str, int]] = {}

    def read(self, now: float | None = None) -> WindowTotals:
        now = time.time() if now is None else now
        newest = int(now)
        oldest = newest - self.window_s + 1
        totals = WindowTotals()
        self._settled = {s: f for s, f in self._settled.items() if s >= oldest}
        for fields in self._settled.values():
            totals.add(fields)
        wanted = [s for s in range(oldest, newest + 1) if s not in self._settled]
        pipe = self.redis.client.pipeline(transaction=False)
        for slot in wanted:
            pipe.hgetall(slot_key(self.redis, slot))
        for slot, raw in zip(wanted, pipe.execute(), strict=True):
            fields = {k.decode(): int(v) for k, v in raw.items()}
            if slot <= newest - self.SETTLED_S:
                self._settled[slot] = fields
            totals.add(fields)
        return totals
