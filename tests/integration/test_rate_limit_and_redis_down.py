"""Per-key rate limit in Redis, and a Redis outage that must not take requests down."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_explain_lambda import CODE, explain
from tests.utils.stores import free_port


def test_over_the_limit_is_429_with_retry_after(api_key: str, ollama: Any, set_env: Any) -> None:
    set_env(RATE_LIMIT_PER_MINUTE="2")

    statuses = [explain(api_key, {"code": CODE})[0] for _ in range(2)]
    status, headers, body = explain(api_key, {"code": CODE})

    assert statuses == [200, 200]
    assert status == 429
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert body["error"]["retry_after"] == int(headers["retry-after"])


def test_limits_are_per_key(api_key: str, ollama: Any, set_env: Any) -> None:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    set_env(RATE_LIMIT_PER_MINUTE="1")
    other = create_key(store=get_postgres(), name="other").key

    assert explain(api_key, {"code": CODE})[0] == 200
    assert explain(api_key, {"code": CODE})[0] == 429
    assert explain(other, {"code": CODE})[0] == 200


def test_redis_down_serves_requests_and_warns_once(
    api_key: str, ollama: Any, set_env: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    set_env(
        REDIS_URL=f"redis://:redis-secret-pw@127.0.0.1:{free_port()}/0", RATE_LIMIT_PER_MINUTE="1"
    )
    capfd.readouterr()

    statuses = [explain(api_key, {"code": CODE})[0] for _ in range(3)]

    out, err = capfd.readouterr()
    logs = out + err
    assert statuses == [200, 200, 200]
    warnings = [line for line in logs.splitlines() if "Redis unreachable" in line]
    assert len(warnings) == 1
    assert "redis-secret-pw" not in logs
