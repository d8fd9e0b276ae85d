"""The hot path on real stores: batched counting in Redis, concurrent requests through the
app, and model clients that outlive the threads that used them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import uuid4

import httpx

from common.models.base import Message
from common.models.ollama_client import OllamaModelClient
from common.ratelimit import count_requests
from common.stores.redis_store import RedisStore
from tests.integration.test_explain_lambda import CODE
from tests.utils.stores import free_port

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` without its last step: it sets the thread's loop to None, and
    Mangum (the Lambda door, called in-process by later tests) asks for that loop."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def test_a_batch_is_counted_as_that_many_single_requests(stores: None) -> None:
    from common.stores.redis_store import get_redis

    redis, key_id = get_redis(), f"hotpath-{uuid4()}"

    assert count_requests(key_id, 3, limit_per_minute=4, redis=redis, now=120.0) == [3, 2, 1]
    assert count_requests(key_id, 2, limit_per_minute=4, redis=redis, now=121.0) == [0, -1]
    # The next minute is a new window.
    assert count_requests(key_id, 1, limit_per_minute=4, redis=redis, now=180.0) == [3]
    ttl = redis.client.ttl(redis.key("rl", key_id, "2"))
    assert 0 < ttl <= 62


def test_counting_fails_open_when_redis_is_down(stores: None) -> None:
    redis = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert count_requests("k", 5, limit_per_minute=1, redis=redis) is None
    finally:
        redis.close()


def test_concurrent_requests_with_one_key_are_limited_exactly(
    api_key: str, ollama: Any, set_env: Any
) -> None:
    from common.web import create_app
    from functions.explain.handler import router

    set_env(RATE_LIMIT_PER_MINUTE="3")
    app = create_app([router], docs=False)

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await asyncio.gather(
                *(
                    client.post("/api/explain", headers={"X-API-Key": api_key}, json={"code": CODE})
                    for _ in range(7)
                )
            )

    responses = run(burst())

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 429, 429, 429, 429]
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["retry-after"] == str(refused.json()["error"]["retry_after"])
        assert refused.headers["x-request-id"]


def test_model_clients_outlive_the_threads_that_used_them(ollama: Any) -> None:
    model = OllamaModelClient(
        host=ollama.url, model="qwen2.5-coder:7b", timeout_s=5, connect_timeout_s=1
    )
    barrier = threading.Barrier(4)

    def ask(i: int) -> str:
        barrier.wait(5)  # four calls at once: four clients
        messages = [Message(role="user", content=f"question {i}")]
        return model.chat(messages).content

    try:
        for _ in range(3):  # three pools of fresh threads, as after a quiet moment
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(ask, range(4)))
            assert all(isinstance(a, str) for a in answers)
        assert len(model._clients) == 4  # reused, not one more per new thread
        assert len(model._idle) == 4
    finally:
        model.close()
    assert model._idle == [] and model._clients == []
