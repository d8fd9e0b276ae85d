"""GET /api/health through the Lambda door."""

from __future__ import annotations

from typing import Any

from tests.utils.lambda_events import FakeLambdaContext, http_event, response_json
from tests.utils.stores import closed_port_url


def health() -> tuple[int, Any]:
    from functions.health.handler import handler

    response = handler(http_event("GET", "/api/health"), FakeLambdaContext())
    return response["statusCode"], response_json(response)


def test_all_up_is_200_without_a_key(ollama: Any) -> None:
    status, body = health()

    assert status == 200, body
    assert body["status"] == "ok" and body["down"] == []
    assert set(body["checks"]) == {"postgres", "redis", "mongodb", "qdrant", "model"}
    for check in body["checks"].values():
        assert check["status"] == "up" and check["latency_ms"] >= 0
    assert body["checks"]["model"]["info"]["model"] == "qwen2.5-coder:7b"


def test_model_server_down_is_503_with_the_fix(ollama: Any, set_env: Any) -> None:
    set_env(OLLAMA_HOST=closed_port_url())

    status, body = health()

    assert status == 503
    assert body["down"] == ["model"]
    model = body["checks"]["model"]
    assert "OLLAMA_HOST" in model["error"] and model["fix"] == "ollama serve"


def test_model_not_pulled_is_503_with_the_pull_command(ollama: Any) -> None:
    ollama.models.clear()

    status, body = health()

    assert status == 503
    assert body["checks"]["model"]["fix"] == "ollama pull qwen2.5-coder:7b"


def test_store_down_is_listed(ollama: Any, set_env: Any) -> None:
    set_env(REDIS_URL=closed_port_url("redis") + "/0")

    status, body = health()

    assert status == 503
    assert body["down"] == ["redis"]
    assert "REDIS_URL" in body["checks"]["redis"]["fix"]
