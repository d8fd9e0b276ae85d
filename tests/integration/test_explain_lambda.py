"""POST /api/explain through the Lambda door, in-process, on real stores and the Ollama double."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils.lambda_events import FakeLambdaContext, http_event, response_json
from tests.utils.stores import closed_port_url

CODE = "def add(a, b):\n    return a + b\n"


def call(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    from functions.explain.handler import handler

    response = handler(http_event(method, path, **kwargs), FakeLambdaContext())
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], headers, response_json(response)


def explain(key: str | None, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    headers = {"X-API-Key": key} if key else {}
    return call("POST", "/api/explain", body=body, headers=headers, **kwargs)


def assert_error(status: int, body: Any, expected_status: int, code: str) -> dict[str, Any]:
    assert status == expected_status, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_explain_answers_with_the_model_output_usage_and_timing(api_key: str, ollama: Any) -> None:
    ollama.script(["This function ", "adds two numbers."], prompt_eval_count=42, eval_count=7)

    status, headers, body = explain(api_key, {"code": CODE, "language": "python"})

    assert status == 200, body
    assert body["explanation"] == "This function adds two numbers."
    assert body["model"] == "qwen2.5-coder:7b"
    assert body["usage"] == {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0
    assert headers["x-request-id"]
    sent = ollama.requests[-1]
    assert sent["path"] == "/api/chat"
    assert CODE in sent["json"]["messages"][-1]["content"]


def test_an_empty_answer_is_retried(api_key: str, ollama: Any) -> None:
    ollama.script("")
    ollama.script("Second try worked.")

    status, _, body = explain(api_key, {"code": CODE})

    assert status == 200
    assert body["explanation"] == "Second try worked."
    assert len([r for r in ollama.requests if r["path"] == "/api/chat"]) == 2


def test_no_key_is_401(stores: None) -> None:
    status, _, body = explain(None, {"code": CODE})
    assert "X-API-Key" in assert_error(status, body, 401, "unauthorized")["message"]


def test_wrong_key_is_401(api_key: str) -> None:
    status, _, body = explain(api_key[:-4] + "abcd", {"code": CODE})
    assert_error(status, body, 401, "unauthorized")


def test_revoked_key_is_401(api_key: str) -> None:
    from common.auth import revoke_key
    from common.stores.postgres import get_postgres

    revoke_key(store=get_postgres(), prefix=api_key.split("_")[1])

    status, _, body = explain(api_key, {"code": CODE})
    assert "revoked" in assert_error(status, body, 401, "unauthorized")["message"]


def test_malformed_json_is_400(api_key: str) -> None:
    status, _, body = explain(api_key, raw_body='{"code": "x",')
    assert_error(status, body, 400, "malformed_json")


def test_missing_field_is_422_with_its_path(api_key: str) -> None:
    status, _, body = explain(api_key, {"language": "python"})
    error = assert_error(status, body, 422, "invalid_input")
    assert [f["path"] for f in error["fields"]] == ["body.code"]


def test_wrong_types_are_422(api_key: str) -> None:
    status, _, body = explain(api_key, {"code": 123, "language": ["py"]})
    error = assert_error(status, body, 422, "invalid_input")
    assert {f["path"] for f in error["fields"]} == {"body.code", "body.language"}


@pytest.mark.parametrize("code", ["", "   \n"])
def test_empty_code_is_422(api_key: str, code: str) -> None:
    status, _, body = explain(api_key, {"code": code})
    assert_error(status, body, 422, "invalid_input")


def test_two_megabytes_of_code_is_413(api_key: str, ollama: Any) -> None:
    status, _, body = explain(api_key, {"code": "x = 1\n" * 350_000})
    assert_error(status, body, 413, "payload_too_large")
    assert ollama.requests == []


def test_wrong_method_is_405(stores: None) -> None:
    status, headers, body = call("GET", "/api/explain")
    assert_error(status, body, 405, "method_not_allowed")
    assert headers["allow"] == "POST"


def test_unknown_route_is_404(stores: None) -> None:
    status, _, body = call("GET", "/api/nope")
    assert_error(status, body, 404, "not_found")


def test_model_server_down_is_503_naming_ollama_host(api_key: str, set_env: Any) -> None:
    set_env(OLLAMA_HOST=closed_port_url())

    status, _, body = explain(api_key, {"code": CODE})

    error = assert_error(status, body, 503, "model_unavailable")
    assert "OLLAMA_HOST" in error["message"]
    assert error["fix"] == "ollama serve"


def test_model_not_pulled_is_503_saying_how_to_pull_it(api_key: str, ollama: Any) -> None:
    ollama.models.clear()

    status, _, body = explain(api_key, {"code": CODE})

    error = assert_error(status, body, 503, "model_not_pulled")
    assert "ollama pull qwen2.5-coder:7b" in error["message"]


def test_model_slower_than_the_timeout_is_504(api_key: str, ollama: Any, set_env: Any) -> None:
    set_env(OLLAMA_TIMEOUT="0.5")
    ollama.script("late", delay_first_s=2)

    status, _, body = explain(api_key, {"code": CODE})

    error = assert_error(status, body, 504, "model_timeout")
    assert "OLLAMA_TIMEOUT" in error["message"]


def test_a_handler_still_answers_after_asyncio_run_unset_the_threads_loop(
    api_key: str, ollama: Any
) -> None:
    import asyncio

    asyncio.run(asyncio.sleep(0))  # ends with set_event_loop(None), as a WebSocket door may

    status, _, body = explain(api_key, {"code": CODE, "language": "python"})

    assert status == 200, body
