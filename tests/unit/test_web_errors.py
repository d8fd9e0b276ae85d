"""The one error mapping, through an app built by the same factory both doors use."""

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from common.errors import Conflict, RateLimited
from common.web import create_app


class Item(BaseModel):
    name: str = Field(min_length=1)
    size: int


router = APIRouter()


@router.post("/api/items")
def make_item(item: Item) -> Item:
    return item


@router.get("/api/conflict")
def conflict() -> None:
    raise Conflict("that item already exists")


@router.get("/api/limited")
def limited() -> None:
    raise RateLimited("slow down", retry_after=17)


@router.get("/api/boom")
def boom() -> None:
    raise RuntimeError("database password is hunter2")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    from common.config import get_settings

    get_settings.cache_clear()
    yield TestClient(create_app([router]), raise_server_exceptions=False)
    get_settings.cache_clear()


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/api/items", content=b'{"name": "a", ', headers={"content-type": "application/json"}
    )

    error = assert_error(response, 400, "malformed_json")
    assert "not valid JSON" in error["message"]


def test_schema_violation_is_422_with_field_paths_and_no_input_values(client: TestClient) -> None:
    response = client.post("/api/items", json={"name": "", "size": "secret-value-xyz"})

    error = assert_error(response, 422, "invalid_input")
    paths = {f["path"] for f in error["fields"]}
    assert paths == {"body.name", "body.size"}
    assert "secret-value-xyz" not in response.text


def test_missing_body_is_422(client: TestClient) -> None:
    error = assert_error(client.post("/api/items"), 422, "invalid_input")
    assert error["fields"][0]["path"] == "body"


def test_body_over_the_limit_is_413_before_any_handler(client: TestClient) -> None:
    response = client.post("/api/items", json={"name": "x" * 2000, "size": 1})

    error = assert_error(response, 413, "payload_too_large")
    assert error["max_bytes"] == 1000


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 100

    response = client.post(
        "/api/items", content=chunks(), headers={"content-type": "application/json"}
    )

    assert_error(response, 413, "payload_too_large")


def test_unknown_route_is_404_json(client: TestClient) -> None:
    error = assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert "/api/nothing-here" in error["message"]


def test_wrong_method_is_405_json_with_allow(client: TestClient) -> None:
    response = client.get("/api/items")

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_typed_errors_keep_their_status_and_headers(client: TestClient) -> None:
    assert_error(client.get("/api/conflict"), 409, "conflict")
    response = client.get("/api/limited")
    error = assert_error(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "17"
    assert error["retry_after"] == 17


def test_unexpected_error_is_a_500_json_that_hides_the_detail(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/api/boom")

    error = assert_error(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] in error["message"]


def test_every_answer_carries_a_request_id(client: TestClient) -> None:
    response = client.get("/api/conflict", headers={"x-request-id": "abc123"})

    assert response.headers["x-request-id"] == "abc123"
