"""Unit tests do no I/O: network sockets are off (unix socketpairs stay, asyncio needs them)."""

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> object:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture(autouse=True)
def history_entries(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What the agents would have written to the history collection (no Mongo here)."""
    recorded: list[dict[str, object]] = []
    monkeypatch.setattr("common.agents.checked.record_history", recorded.append)
    return recorded


@pytest.fixture(autouse=True)
def _no_metrics_flusher(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request recorder would start the metrics flusher thread, which talks to
    Redis: not in the unit tier (a placeholder makes it look started)."""
    monkeypatch.setattr("common.ws.metrics._flusher", object())
