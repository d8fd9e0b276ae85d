"""The Redis L0 cache: repeats answered in a millisecond, and never a failure when Redis is down."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from common.behind import flush_behind
from common.lazy import Lazy
from common.models import ChatResult, Message, cache, get_model_client
from common.models.cache import CachedModelClient, CacheWrite, CacheWriter
from common.stores.redis_store import RedisStore, get_redis
from tests.fakes.scripted_model import ScriptedModel
from tests.integration.test_explain_lambda import CODE, explain
from tests.utils.stores import free_port


def chats(ollama: Any) -> int:
    return len(ollama.requests_to("/api/chat"))


def test_a_repeated_explain_is_a_hit_with_header_and_body_flag(api_key: str, ollama: Any) -> None:
    ollama.script("It adds.")

    first_status, first_headers, first = explain(api_key, {"code": CODE})
    second_status, second_headers, second = explain(api_key, {"code": CODE})

    assert (first_status, second_status) == (200, 200)
    assert first_headers["x-cache"] == "miss" and first["cached"] is False
    assert second_headers["x-cache"] == "hit" and second["cached"] is True
    assert second["explanation"] == first["explanation"] == "It adds."
    assert chats(ollama) == 1


def test_a_different_question_is_a_miss(api_key: str, ollama: Any) -> None:
    explain(api_key, {"code": CODE})
    _, headers, _ = explain(api_key, {"code": CODE, "question": "Is it fast?"})

    assert headers["x-cache"] == "miss"
    assert chats(ollama) == 2


def test_temperature_above_zero_is_not_cached_unless_asked(ollama: Any) -> None:
    model = get_model_client()
    messages = [Message(role="user", content="hello")]

    model.chat(messages, options={"temperature": 0.7})
    model.chat(messages, options={"temperature": 0.7})
    assert chats(ollama) == 2

    model.chat(messages, options={"temperature": 0.7, "cache": True})
    again = model.chat(messages, options={"temperature": 0.7, "cache": True})
    assert chats(ollama) == 3 and again.cached
    assert all("cache" not in r["json"].get("options", {}) for r in ollama.requests_to("/api/chat"))


def test_an_incomplete_answer_is_not_cached(ollama: Any) -> None:
    model = get_model_client()
    messages = [Message(role="user", content="long")]
    ollama.script("cut", done_reason="length")
    ollama.script("cut", done_reason="length")

    model.chat(messages, options={"temperature": 0, "num_predict": 3})
    model.chat(messages, options={"temperature": 0, "num_predict": 3})

    assert chats(ollama) == 2


def test_redis_down_bypasses_the_cache(api_key: str, ollama: Any, set_env: Any) -> None:
    set_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    statuses = [explain(api_key, {"code": CODE})[0] for _ in range(2)]

    assert statuses == [200, 200]
    assert chats(ollama) == 2


def test_cache_off_with_zero_ttl(api_key: str, ollama: Any, set_env: Any) -> None:
    set_env(CACHE_TTL_SECONDS="0")

    _, headers, body = explain(api_key, {"code": CODE})
    explain(api_key, {"code": CODE})

    assert "x-cache" not in headers and body["cached"] is False
    assert chats(ollama) == 2


# -- written behind the answer ---------------------------------------------------


class GatedWriter(CacheWriter):
    """The cache's writer, each batch held until the test lets one through."""

    def __init__(self) -> None:
        super().__init__()
        self.permits = threading.Semaphore(0)
        self.entered: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self.batches: queue.SimpleQueue[list[str]] = queue.SimpleQueue()

    def let_through(self, batches: int = 1000) -> None:
        self.permits.release(batches)

    def _write(self, batch: list[CacheWrite]) -> None:
        self.entered.put([item.value for item in batch])
        assert self.permits.acquire(timeout=10)
        super()._write(batch)
        self.batches.put([item.value for item in batch])


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedWriter]:
    writer = GatedWriter()
    monkeypatch.setattr(cache, "_writes", Lazy(lambda: writer))
    yield writer
    writer.let_through()
    assert writer.flush(timeout_s=10)


def cached_client(*answers: str) -> tuple[CachedModelClient, ScriptedModel]:
    inner = ScriptedModel(*answers)
    return CachedModelClient(inner, redis=get_redis, ttl_s=60), inner  # type: ignore[arg-type]


def l0_keys() -> list[bytes]:
    redis = get_redis()
    return list(redis.client.scan_iter(match=redis.key("l0:*"), count=1000))


def test_the_answer_is_written_behind_and_read_back_here_before_it_lands(
    stores: None, gated: GatedWriter
) -> None:
    client, inner = cached_client("first answer", "never asked")
    messages = [Message(role="user", content=f"behind {uuid.uuid4()}")]
    before = set(l0_keys())

    first = client.chat(messages, options={"temperature": 0})
    assert set(l0_keys()) == before  # the request did not wait for Redis
    again = client.chat(messages, options={"temperature": 0})

    assert (first.cached, again.cached) == (False, True)
    assert again.content == "first answer" and len(inner.calls) == 1

    gated.let_through()
    assert flush_behind(timeout_s=10)
    [key] = set(l0_keys()) - before
    redis = get_redis().client
    assert 0 < redis.ttl(key) <= 60
    assert ChatResult.model_validate_json(redis.get(key)).content == "first answer"
    assert gated.queued(key.decode()) is None  # read from Redis from now on


def test_a_newer_answer_queued_while_the_older_is_written_stays_readable(
    stores: None, gated: GatedWriter
) -> None:
    redis = get_redis()
    key = redis.key(f"l0:{uuid.uuid4()}")
    older = CacheWrite(redis, key, '{"content": "older"}', 60)
    newer = CacheWrite(redis, key, '{"content": "newer"}', 60)

    gated.put(older)
    assert gated.entered.get(timeout=10) == [older.value]  # being written
    gated.put(newer)
    gated.let_through(1)
    assert gated.batches.get(timeout=10) == [older.value]

    assert gated.queued(key) == newer.value  # not forgotten with the older write
    gated.let_through(1)
    assert gated.batches.get(timeout=10) == [newer.value]
    assert gated.flush(timeout_s=10)
    assert gated.queued(key) is None
    assert redis.client.get(key) == newer.value.encode()


def test_a_write_that_cannot_reach_redis_is_dropped_and_not_read_back(stores: None) -> None:
    down = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="down:")
    writer = CacheWriter()
    item = CacheWrite(down, down.key("l0:lost"), '{"content": "lost"}', 60)

    assert writer.put(item)
    assert writer.flush(timeout_s=10)

    assert writer.queued(item.key) is None
    assert down._down_since is not None  # noted once for the outage, not raised
    down.close()


def test_the_lambda_door_writes_the_answer_before_it_returns(
    api_key: str, ollama: Any, gated: GatedWriter
) -> None:
    ollama.script("It adds.")
    # Lambda freezes the instance once the door returns: the write must be done by then.
    threading.Timer(0.3, gated.let_through).start()

    status, headers, _ = explain(api_key, {"code": CODE})

    assert (status, headers["x-cache"]) == (200, "miss")
    assert gated.batches.qsize() == 1  # written before the door returned
    assert len(l0_keys()) == 1
