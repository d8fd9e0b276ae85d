"""The analyze and security_scan jobs honour the request's options.max_attempts, as
their HTTP door does, instead of the server-wide MAX_ATTEMPTS; and stay cancellable."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

CODE = "import yaml\n\n\ndef load(data):\n    return yaml.load(data)\n"


class _Stopped(Exception):
    pass


class _Ctx:
    """The part of a JobContext a runner uses."""

    def __init__(self, key_id: uuid.UUID) -> None:
        self.key_id = key_id
        self.job_id = uuid.uuid4()
        self.cancel = False

    def progress(self, step: str, percent: float, message: str = "") -> None:
        pass

    def on_token(self, token: str) -> None:
        pass

    def raise_if_cancelled(self) -> None:
        if self.cancel:
            raise _Stopped()


def _ctx(key: str) -> _Ctx:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return _Ctx(authenticate(key, store=get_postgres()).key_id)


@pytest.fixture
def three_by_default(set_env: Callable[..., None], ollama: Any) -> Any:
    """MAX_ATTEMPTS=3 on the server, and a model that never answers usably."""
    set_env(MAX_ATTEMPTS="3")
    ollama.default_answer = "I would rather not."
    return ollama


@pytest.mark.parametrize(("options", "expected"), [({"max_attempts": 1}, 1), ({}, 3)])
def test_an_analyze_job_makes_as_many_model_attempts_as_its_request_says(
    api_key: str, three_by_default: Any, options: dict[str, Any], expected: int
) -> None:
    from common.actions.analyze import run_job

    # When an analysis job runs with (or without) options.max_attempts
    result = run_job({"code": CODE, "options": options}, _ctx(api_key))  # type: ignore[arg-type]
    # Then the model was asked that many times (else MAX_ATTEMPTS), and the report says so
    assert len(three_by_default.requests_to("/api/chat")) == expected
    assert result["attempts"] == expected and result["model_error"]


@pytest.mark.parametrize(("options", "expected"), [({"max_attempts": 1}, 1), ({}, 3)])
def test_a_security_scan_job_makes_as_many_fix_attempts_as_its_request_says(
    api_key: str, three_by_default: Any, options: dict[str, Any], expected: int
) -> None:
    from common.security.scan import run_job

    body = {"code": CODE, "path": "cfg.py", "fix": True, "max_fixes": 1, "options": options}
    result = run_job(body, _ctx(api_key))  # type: ignore[arg-type]
    assert [f["status"] for f in result["fixes"]] == ["unconfirmed"]
    assert len(three_by_default.requests_to("/api/chat")) == expected


def test_a_cancelled_security_scan_job_stops_before_the_model(api_key: str, ollama: Any) -> None:
    from common.security.scan import run_job

    ctx = _ctx(api_key)
    ctx.cancel = True
    with pytest.raises(_Stopped):
        run_job({"code": CODE, "path": "cfg.py", "fix": True}, ctx)  # type: ignore[arg-type]
    assert ollama.requests_to("/api/chat") == []
