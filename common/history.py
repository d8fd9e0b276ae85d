"""Every model attempt, kept in MongoDB so a user can see why an answer took three tries.

Writes leave the request's path: entries go to a bounded queue that one thread
drains into the ``history`` collection. Lambda freezes a function between
invocations, so its door calls :func:`flush_history` before returning; the local
server flushes on shutdown. A full queue or a Mongo outage drops entries with one
warning: history is for people, never a reason to fail a request.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from common.lazy import Lazy
from common.logs import get_logger

log = get_logger("history")

QUEUE_SIZE = 10_000
BATCH_SIZE = 200
LINGER_S = 0.2
# Raw answers are kept whole up to this size: enough to see what a model did wrong.
MAX_RAW_CHARS = 20_000


class HistoryWriter:
    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._has_entries = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._cut_linger = threading.Event()
        self._pending = 0  # queued or being written
        self._writer_idle = False
        self._flushers = 0
        self._thread: threading.Thread | None = None
        self._warned = False

    def record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("created_at", datetime.now(UTC))
        with self._lock:
            full = len(self._entries) >= QUEUE_SIZE
            if not full:
                self._entries.append(entry)
                self._pending += 1
                # Wake the writer only when it waits for a first entry: while it
                # lingers for more, a wake-up per entry would only cost it (and the
                # requests) a turn at the interpreter lock.
                if self._writer_idle:
                    self._has_entries.notify()
        if full:
            self._warn("history queue full; dropping entries")
            return
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._ensure_thread()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued entry is written (or dropped). True when drained."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if not self._pending:
                return True
            self._flushers += 1
        try:
            self._cut_linger.set()  # a lingering writer writes now
            with self._lock:
                while self._pending:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._drained.wait(left)
            return True
        finally:
            with self._lock:
                self._flushers -= 1

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="history-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._entries:
                    self._writer_idle = True
                    self._has_entries.wait()
                    self._writer_idle = False
                lingering = len(self._entries) < BATCH_SIZE and not self._flushers
            if lingering:
                # Linger a moment for more: each write costs the driver about a
                # millisecond of CPU (server selection, encoding) whatever its size, and
                # that CPU is taken from requests. flush() cuts the wait short.
                self._cut_linger.wait(LINGER_S)
            self._cut_linger.clear()
            with self._lock:
                batch = self._entries[:BATCH_SIZE]
                del self._entries[:BATCH_SIZE]
            self._write(batch)
            with self._lock:
                self._pending -= len(batch)
                self._drained.notify_all()
                if self._flushers:
                    self._cut_linger.set()  # more was queued meanwhile: no linger for it

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            from common.stores.mongo import get_mongo

            get_mongo()["history"].insert_many(batch, ordered=False)
            self._warned = False
        except Exception as exc:  # Mongo down or misconfigured: drop, warn once
            self._warn(f"history not written ({type(exc).__name__}); dropping {len(batch)}")

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message)


_writer: Lazy[HistoryWriter] = Lazy(HistoryWriter)


def record_history(entry: dict[str, Any]) -> None:
    """Queue ``entry`` for the history collection, tagged with the current request."""
    from common.context import current_request

    info = current_request()
    if info is not None:
        entry.setdefault("request_id", info.request_id)
        entry.setdefault("key_id", info.key_id)
    _writer.get().record(entry)


def flush_history(timeout_s: float = 5.0) -> bool:
    return _writer.get().flush(timeout_s)


def find_history(
    *, key_id: str, request_id: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The key's history entries, newest first (optionally for one request)."""
    from common.stores.mongo import get_mongo

    query: dict[str, Any] = {"key_id": key_id}
    if request_id:
        query["request_id"] = request_id
    cursor = get_mongo()["history"].find(query, {"_id": 0}).sort("created_at", -1).limit(limit)
    return list(cursor)
