"""Text no store can hold, on every route: a NUL or a lone surrogate anywhere in a JSON
body (values and keys), a NUL in a query or a path, is a 422 naming the field, before
the route runs; a body that is not UTF-8 or is nested past the parser's depth is
malformed_json; an error never echoes a control character back."""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from typing import Any

import pytest

import functions
from tests.utils.lambda_events import invoke, response_json


def routes() -> list[tuple[str, str, str]]:
    """(function, method, path) of every route that takes a JSON body the middleware
    reads whole (not the streamed ones: an upload's bytes, a Figma file of tens of MB)."""
    from common.web.middleware import STREAMED_ROUTES

    found = []
    for info in sorted(pkgutil.iter_modules(functions.__path__), key=lambda i: i.name):
        try:
            module = importlib.import_module(f"functions.{info.name}.handler")
        except ImportError:
            continue
        router = getattr(module, "router", None)
        for route in getattr(router, "routes", []):
            for method in sorted(getattr(route, "methods", None) or ()):
                if method in ("POST", "PUT", "PATCH"):
                    if route.path in STREAMED_ROUTES or route.path.endswith("/uploads/{upload_id}"):
                        continue
                    path = re.sub(r"\{[^}]+\}", lambda m: _param(m.group()), route.path)
                    found.append((info.name, method, path))
    return found


def _param(name: str) -> str:
    return "github" if name == "{provider}" else str(uuid.uuid4())


ROUTES = routes()


def send(route: tuple[str, str, str], key: str, raw: bytes, query: str = "") -> tuple[int, Any]:
    function, method, path = route
    response = invoke(
        function,
        method,
        path,
        key,
        raw=raw,
        headers={"Content-Type": "application/json"},
        query=query,
    )
    return response["statusCode"], response_json(response)


def test_there_are_routes_to_try() -> None:
    assert len(ROUTES) >= 20


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[1]} {r[2]}")
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"code": "x = 1\\u0000"}', "body.code"),
        (b'{"files": {"a\\u0000.py": "x"}}', "body.files.a\\x00.py.[key]"),
        (b'{"options": {"instructions": ["ok", "\\ud800"]}}', "body.options.instructions.1"),
    ],
    ids=["nul-value", "nul-key", "lone-surrogate"],
)
def test_unstorable_text_in_any_body_is_a_422_naming_the_field(
    api_key: str, route: tuple[str, str, str], raw: bytes, field: str
) -> None:
    status, answer = send(route, api_key, raw)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_input"
    assert answer["error"]["fields"][0]["path"] == field
    assert "\x00" not in answer["error"]["message"]


def test_a_nul_in_a_query_or_a_path_is_a_422(api_key: str) -> None:
    response = invoke("projects_list", "GET", "/api/projects", api_key, query="cursor=a%00b")
    assert response["statusCode"] == 422
    assert response_json(response)["error"]["fields"][0]["path"] == "query.cursor"
    response = invoke("reports_get", "GET", "/api/reports/a\x00b", api_key)
    assert response["statusCode"] == 422
    assert response_json(response)["error"]["fields"][0]["path"] == "path"


@pytest.mark.parametrize(
    "raw", [b'{"code": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000], ids=["utf8", "deep"]
)
def test_a_body_no_parser_can_read_is_malformed_json(api_key: str, raw: bytes) -> None:
    status, answer = send(("explain", "POST", "/api/explain"), api_key, raw)
    assert status == 400 and answer["error"]["code"] == "malformed_json", answer


def test_a_valid_surrogate_pair_and_a_literal_backslash_u_pass(api_key: str, ollama: Any) -> None:
    # "\ud83d\ude00" is one emoji; "\\u0000" is the six characters \u0000 in the text
    raw = b'{"code": "s = \\"\\ud83d\\ude00 \\\\u0000\\"\\n"}'
    status, answer = send(("explain", "POST", "/api/explain"), api_key, raw)
    assert status == 200, answer


def test_a_404_does_not_echo_control_characters(api_key: str) -> None:
    response = invoke("health", "GET", "/api/nothing\x1b[31m", api_key)
    body = response_json(response)
    assert response["statusCode"] == 404
    assert "\x1b" not in body["error"]["message"]


def test_a_405_lists_every_method_the_path_takes() -> None:
    from fastapi.testclient import TestClient

    from common.web import create_app
    from functions.projects_create.handler import router as create
    from functions.projects_list.handler import router as listing

    # As the local server mounts them: one route per function on the same path
    response = TestClient(create_app([listing, create])).delete("/api/projects")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert "POST" in response.json()["error"]["message"]
