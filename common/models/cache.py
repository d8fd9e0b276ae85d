"""The L0 cache: a model's answer to the same request, from Redis, in a millisecond.

The key covers everything that shapes the answer (provider, model, options,
format, messages). Only answers that are deterministic are cached: a request
whose temperature is above 0 is not, unless it asks (``options["cache"] = True``).
Only complete answers are stored, written behind the answer (common/behind.py): the
request does not wait for the write, and this process reads its own queued writes,
so a repeat here is a hit at once; another process may miss for the moment the
write takes. Redis down means the cache is bypassed, with one warning for the
outage, never a failed request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.behind import BehindWriter
from common.context import current_request
from common.lazy import Lazy
from common.models.base import (
    ChatResult,
    Embeddings,
    Message,
    ModelClient,
    ResponseFormat,
    TokenCallback,
)
from common.stores.redis_store import RedisDown, RedisStore

# Agents ask for temperature 0 unless told otherwise: a code answer should not be a dice roll.
CACHE_OPTION = "cache"


def cache_key(
    *,
    provider: str,
    model: str,
    messages: list[Message],
    options: dict[str, Any],
    format: ResponseFormat,
) -> str:
    payload = {
        "provider": provider,
        "model": model,
        "options": {k: v for k, v in sorted(options.items()) if k != CACHE_OPTION},
        "format": format,
        "messages": [[m.role, m.content, m.context] for m in messages],
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"l0:{digest}"


def cacheable(options: dict[str, Any]) -> bool:
    asked = options.get(CACHE_OPTION)
    if asked is not None:
        return bool(asked)
    temperature = options.get("temperature")
    return temperature is not None and float(temperature) <= 0


class CachedModelClient:
    """A :class:`ModelClient` that answers repeats from Redis.

    Parameters
    ----------
    inner:
        The provider's client.
    redis:
        Returns the Redis store, or raises when none is configured (then: no cache).
    ttl_s:
        How long an answer is kept.
    """

    def __init__(self, inner: ModelClient, *, redis: Callable[[], RedisStore], ttl_s: int) -> None:
        self.inner = inner
        self._redis = redis
        self.ttl_s = ttl_s
        self.provider = inner.provider
        self.model = inner.model

    def chat(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any] | None = None,
        format: ResponseFormat = None,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        result = self._chat(messages, options=options, format=format, on_token=on_token)
        # Every answer, cached or not, feeds the monitoring's model figures (tokens/s).
        from common.ws.metrics import record_model_call

        record_model_call(result.usage.completion_tokens, result.duration_ms, cached=result.cached)
        return result

    def _chat(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any] | None,
        format: ResponseFormat,
        on_token: TokenCallback | None,
    ) -> ChatResult:
        options = dict(options or {})
        use_cache = self.ttl_s > 0 and cacheable(options)
        options.pop(CACHE_OPTION, None)
        if not use_cache:
            return self.inner.chat(messages, options=options, format=format, on_token=on_token)
        key = cache_key(
            provider=self.provider,
            model=self.model,
            messages=messages,
            options=options,
            format=format,
        )
        store = self._store()
        started = time.perf_counter()
        if store is not None:
            hit = self._get(store, key)
            if hit is not None:
                hit.cached = True
                hit.duration_ms = round((time.perf_counter() - started) * 1000)
                if on_token is not None and hit.content:
                    on_token(hit.content)
                _count(hit=True)
                return hit
        result = self.inner.chat(messages, options=options, format=format, on_token=on_token)
        _count(hit=False)
        if store is not None and result.complete and result.content:
            self._set(store, key, result)
        return result

    def _store(self) -> RedisStore | None:
        try:
            return self._redis()
        except RedisDown:
            return None

    def _get(self, store: RedisStore, key: str) -> ChatResult | None:
        full_key = store.key(key)
        raw: str | bytes | None = _writes.get().queued(full_key)
        if raw is None:
            try:
                raw = store.client.get(full_key)
            except RedisDown as exc:
                store.note_down(exc, "the model cache")
                return None
            store.note_up()
        if raw is None:
            return None
        try:
            return ChatResult.model_validate_json(raw)
        except ValueError:
            return None  # written by an older version: a miss, overwritten below

    def _set(self, store: RedisStore, key: str, result: ChatResult) -> None:
        # A Redis round trip after the answer was in hand was a third of what the
        # server added to a model call (bench/gateway.py): written behind instead.
        _writes.get().put(CacheWrite(store, store.key(key), result.model_dump_json(), self.ttl_s))

    def embed(self, texts: list[str]) -> Embeddings:
        return self.inner.embed(texts)

    def context_length(self) -> int:
        return self.inner.context_length()

    def health(self) -> dict[str, Any]:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True, slots=True)
class CacheWrite:
    store: RedisStore
    key: str
    value: str
    ttl_s: int


class CacheWriter(BehindWriter[CacheWrite]):
    """Answers written to Redis behind the request, a pipeline of SETs per batch, and
    what is queued readable meanwhile (:meth:`queued`)."""

    def __init__(self) -> None:
        # No linger: another process should find the answer as soon as possible;
        # under a burst the answers that queue while one batch is written go together.
        # A thousand answers (tens of MB at most) while Redis stalls; more are dropped.
        super().__init__("model-cache", linger_s=0.0, batch_size=100, queue_size=1_000)
        self._queued: dict[str, str] = {}
        self._queued_lock = threading.Lock()

    def put(self, item: CacheWrite) -> bool:
        with self._queued_lock:
            self._queued[item.key] = item.value
        if super().put(item):
            return True
        self._forget([item])
        return False

    def queued(self, key: str) -> str | None:
        return self._queued.get(key)

    def _write(self, batch: list[CacheWrite]) -> None:
        try:
            by_store: dict[int, list[CacheWrite]] = {}
            for item in batch:
                by_store.setdefault(id(item.store), []).append(item)
            for items in by_store.values():
                store = items[0].store
                pipeline = store.client.pipeline(transaction=False)
                for item in items:
                    pipeline.set(item.key, item.value, ex=item.ttl_s)
                try:
                    pipeline.execute()
                except RedisDown as exc:
                    store.note_down(exc, "the model cache")
                else:
                    store.note_up()
        finally:
            self._forget(batch)

    def _forget(self, items: list[CacheWrite]) -> None:
        with self._queued_lock:
            for item in items:
                # Unless a newer answer for the key was queued meanwhile.
                if self._queued.get(item.key) is item.value:
                    del self._queued[item.key]


_writes: Lazy[CacheWriter] = Lazy(CacheWriter)


def _count(*, hit: bool) -> None:
    info = current_request()
    if info is None:
        return
    if hit:
        info.cache_hits += 1
    else:
        info.cache_misses += 1
