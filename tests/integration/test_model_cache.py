"""The Redis L0 cache: repeats answered in a millisecond, and never a failure when Redis is down."""

from __future__ import annotations

from typing import Any

from common.models import Message, get_model_client
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
