"""Which handler serves which path; optional handlers that are not there are skipped."""

from __future__ import annotations

import sys
import types

import pytest

from common.ws.registry import BUILTIN, build_registry, compile_path


def test_a_path_pattern_takes_one_segment_per_parameter() -> None:
    pattern = compile_path("/ws/ide/terminal/{sid}")
    found = pattern.match("/ws/ide/terminal/abc-123")
    assert found is not None and found["sid"] == "abc-123"
    assert pattern.match("/ws/ide/terminal/a/b") is None
    assert pattern.match("/ws/ide/terminal/") is None
    assert compile_path("/ws/monitoring/stream").match("/ws/monitoring/stream") is not None
    assert compile_path("/ws/a.b/{sid}").match("/ws/aXb/1") is None  # literal parts are literal


def test_the_builtin_routes_match_their_paths() -> None:
    registry = build_registry(BUILTIN, ())
    monitoring = registry.match("/ws/monitoring/stream")
    assert monitoring is not None and monitoring.handler.route == "monitoring"
    assert monitoring.sid is None
    job = registry.match("/ws/jobs/0b1c2d3e-0000-4000-8000-000000000000")
    assert job is not None and job.handler.route == "jobs"
    assert job.sid == "0b1c2d3e-0000-4000-8000-000000000000"
    assert registry.match("/ws/nothing") is None
    assert registry.by_route("jobs") is job.handler


def test_optional_handlers_that_do_not_exist_are_skipped() -> None:
    registry = build_registry(BUILTIN, ("common.ws.not_written_yet:Handler",))
    assert sorted(h.route for h in registry.handlers) == ["jobs", "monitoring"]


def test_an_optional_handler_that_fails_to_import_is_skipped_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = types.ModuleType("common.ws._broken_for_test")
    monkeypatch.setitem(sys.modules, "common.ws._broken_for_test", broken)  # no Handler in it
    registry = build_registry(BUILTIN, ("common.ws._broken_for_test:Handler",))
    assert len(registry.handlers) == 2
    assert any("not loaded" in r.getMessage() for r in caplog.records)


def test_an_optional_handler_that_exists_is_served() -> None:
    class Echo:
        route = "echo"
        path = "/ws/echo/{sid}"
        local_only = True

    module = types.ModuleType("common.ws._echo_for_test")
    module.Echo = Echo  # type: ignore[attr-defined]
    sys.modules["common.ws._echo_for_test"] = module
    try:
        registry = build_registry(BUILTIN, ("common.ws._echo_for_test:Echo",))
    finally:
        del sys.modules["common.ws._echo_for_test"]
    match = registry.match("/ws/echo/s1")
    assert match is not None and match.handler.local_only and match.sid == "s1"
