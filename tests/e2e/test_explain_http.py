"""The local server over real HTTP, and the same request through both doors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.test_explain_lambda import CODE, explain
from tests.utils.server import LocalServer


def post(server: LocalServer, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(server.url + "/api/explain", headers=headers, timeout=30, **kwargs)


@pytest.mark.parametrize(
    "case",
    ["ok", "no_key", "bad_key", "malformed", "missing", "types", "empty"],
)
def test_both_doors_give_the_same_status_and_body(
    server: LocalServer, api_key: str, ollama: Any, case: str
) -> None:
    bodies: dict[str, Any] = {
        "ok": {"code": CODE, "language": "python"},
        "missing": {"language": "python"},
        "types": {"code": 1},
        "empty": {"code": ""},
    }
    key = {"no_key": None, "bad_key": api_key[:-2] + "zz"}.get(case, api_key)
    kwargs: dict[str, Any] = (
        {"raw_body": '{"code": '}
        if case == "malformed"
        else {"body": bodies.get(case, {"code": CODE})}
    )

    lambda_status, _, lambda_body = explain(key, **kwargs)
    http_kwargs = (
        {"content": kwargs["raw_body"], "headers": {"content-type": "application/json"}}
        if "raw_body" in kwargs
        else {"json": kwargs["body"]}
    )
    headers = http_kwargs.pop("headers", {})
    response = httpx.post(
        server.url + "/api/explain",
        headers={**headers, **({"X-API-Key": key} if key else {})},
        timeout=30,
        **http_kwargs,
    )

    assert response.status_code == lambda_status
    http_body = response.json()
    if case == "ok":
        # The same request through the second door is answered from the shared cache.
        assert lambda_status == 200
        assert response.headers["x-cache"] == "hit" and http_body.pop("cached") is True
        assert lambda_body.pop("cached") is False
        assert isinstance(http_body.pop("duration_ms"), int)
        lambda_body.pop("duration_ms")
    assert http_body == lambda_body


def test_two_megabytes_is_413_over_http(server: LocalServer, api_key: str) -> None:
    response = post(server, api_key, json={"code": "y = 2\n" * 350_000})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_unknown_route_and_wrong_method_are_json(server: LocalServer) -> None:
    missing = httpx.get(server.url + "/api/does-not-exist")
    wrong = httpx.get(server.url + "/api/explain")

    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"


def test_health_and_docs_are_open(server: LocalServer, ollama: Any) -> None:
    health = httpx.get(server.url + "/api/health", timeout=15)
    docs = httpx.get(server.url + "/docs")
    spec = httpx.get(server.url + "/openapi.json").json()

    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/api/explain" in spec["paths"] and "/api/health" in spec["paths"]
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("name") == "X-API-Key" for s in schemes.values())


def test_server_logs_never_hold_the_key(server: LocalServer, api_key: str, ollama: Any) -> None:
    post(server, api_key, json={"code": CODE})
    post(server, api_key + "nope", json={"code": CODE})

    assert api_key.split("_", 2)[2] not in server.logs()
    assert api_key.split("_")[1] in server.logs()
