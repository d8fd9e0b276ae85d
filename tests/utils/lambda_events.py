"""API Gateway HTTP API (payload 2.0) events and a Lambda context, to call handlers in-process."""

from __future__ import annotations

import base64
import importlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeLambdaContext:
    function_name: str = "ai-orchestrator-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-west-1:123456789012:function:ai-orchestrator-test"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/ai-orchestrator-test"
    log_stream_name: str = "2026/11/28/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> dict[str, Any]:
    """An event as API Gateway sends it for ``method path``."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    is_base64 = False
    text: str | None = None
    if raw_body is not None:
        if isinstance(raw_body, bytes):
            text, is_base64 = base64.b64encode(raw_body).decode(), True
        else:
            text = raw_body
    elif body is not None:
        text = json.dumps(body)
    if text is not None:
        headers.setdefault("content-type", "application/json")
    request_id = uuid.uuid4().hex[:16]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "api.example.test", "user-agent": "pytest", **headers},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api123",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": request_id,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "28/Nov/2026:07:00:00 +0000",
            "timeEpoch": 1795849200000,
        },
        "isBase64Encoded": is_base64,
    }
    if text is not None:
        event["body"] = text
    return event


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


def invoke(
    function: str,
    method: str,
    path: str,
    key: str | None = None,
    *,
    body: Any = None,
    raw: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> dict[str, Any]:
    """Call ``functions/<function>/handler.py`` as API Gateway would, with ``key`` as
    X-API-Key when given; the Lambda response as the handler returned it."""
    module = importlib.import_module(f"functions.{function}.handler")
    sent = {"X-API-Key": key} if key else {}
    event = http_event(
        method, path, body=body, raw_body=raw, headers={**sent, **(headers or {})}, query=query
    )
    response: dict[str, Any] = module.handler(event, FakeLambdaContext())
    return response
