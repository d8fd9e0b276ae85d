"""The history writer: batches, flushes at once when asked, drops with one warning when full."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from common import history
from common.history import HistoryWriter


class MemoryWriter(HistoryWriter):
    """The writer with MongoDB replaced by a list of the batches it wrote."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[dict[str, Any]]] = []
        self.write_gate = threading.Event()
        self.write_gate.set()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        assert self.write_gate.wait(5)
        self.batches.append(batch)


def test_entries_recorded_together_are_written_in_one_batch() -> None:
    writer = MemoryWriter()

    for i in range(50):
        writer.record({"n": i})
    assert writer.flush(timeout_s=5)

    assert [len(b) for b in writer.batches] == [50]
    assert [e["n"] for e in writer.batches[0]] == list(range(50))
    assert all("created_at" in e for e in writer.batches[0])


def test_flush_cuts_the_linger_short() -> None:
    writer = MemoryWriter()
    writer.record({"n": 1})
    time.sleep(0.01)  # the writer has the entry and lingers for more

    started = time.monotonic()
    assert writer.flush(timeout_s=5)

    assert time.monotonic() - started < history.LINGER_S / 2
    assert writer.batches == [[{"n": 1, "created_at": writer.batches[0][0]["created_at"]}]]


def test_entries_queued_while_a_batch_is_written_are_flushed_too() -> None:
    writer = MemoryWriter()
    writer.write_gate.clear()
    writer.record({"n": 1})
    assert writer.flush(timeout_s=0.05) is False  # its write is stuck: not drained yet
    writer.record({"n": 2})

    writer.write_gate.set()
    assert writer.flush(timeout_s=5)

    assert [e["n"] for b in writer.batches for e in b] == [1, 2]


def test_a_big_burst_is_written_in_batches_of_batch_size() -> None:
    writer = MemoryWriter()

    for i in range(history.BATCH_SIZE * 2 + 1):
        writer.record({"n": i})
    assert writer.flush(timeout_s=5)

    assert sorted(len(b) for b in writer.batches) == [1, history.BATCH_SIZE, history.BATCH_SIZE]


def test_a_full_queue_drops_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(history, "QUEUE_SIZE", 3)
    writer = MemoryWriter()
    writer.write_gate.clear()

    for i in range(10):
        writer.record({"n": i})
    writer.write_gate.set()
    assert writer.flush(timeout_s=5)

    written = sum(len(b) for b in writer.batches)
    assert 3 <= written < 10
    assert capsys.readouterr().out.count("history queue full") == 1


def test_flush_with_nothing_queued_returns_at_once() -> None:
    writer = MemoryWriter()
    started = time.monotonic()

    assert writer.flush(timeout_s=5)
    assert time.monotonic() - started < 0.05
