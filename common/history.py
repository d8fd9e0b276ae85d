"""Every model attempt, kept in MongoDB so a user can see why an answer took three tries.

Writes leave the request's path: entries go to a bounded queue that one thread
drains into the ``history`` collection. Lambda freezes a function between
invocations, so its door calls :func:`flush_history` before returning; the local
server flushes on shutdown. A full queue or a Mongo outage drops entries with one
warning: history is for people, never a reason to fail a request.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

from common.lazy import Lazy
from common.logs import get_logger

log = get_logger("history")

QUEUE_SIZE = 10_000
BATCH_SIZE = 200
_FLUSH: dict[str, Any] = {}  # a marker in the queue, compared by identity
LINGER_S = 0.2
# Raw answers are kept whole up to this size: enough to see what a model did wrong.
MAX_RAW_CHARS = 20_000


class HistoryWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warned = False
        self._pending = 0
        self._idle = threading.Condition()

    def record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("created_at", datetime.now(UTC))
        try:
            with self._idle:
                self._queue.put_nowait(entry)
                self._pending += 1
        except queue.Full:
            self._warn("history queue full; dropping entries")
            return
        self._ensure_thread()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued entry is written (or dropped). True when drained."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            if not self._pending:
                return True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_FLUSH)  # wakes a lingering writer now
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="history-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is _FLUSH:
                continue
            batch = [entry]
            # Linger a moment for more: each write costs the driver about a millisecond
            # of CPU (server selection, encoding) whatever its size, and that CPU is
            # taken from requests. flush() cuts the wait short.
            deadline = time.monotonic() + LINGER_S
            while len(batch) < BATCH_SIZE:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    more = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if more is _FLUSH:
                    break
                batch.append(more)
            self._write(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

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
