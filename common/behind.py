"""Writes that leave the request's path: a bounded queue that one thread drains in batches.

The history of model attempts (MongoDB) and the L0 cache's answers (Redis) are
written so: the request answers without waiting for them. Lambda freezes a function
between invocations, so every Lambda door calls :func:`flush_behind` before it
returns; the local server flushes on shutdown. A full queue drops with one warning:
what is written behind is never a reason to fail or slow a request.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Generic, TypeVar

from common.logs import get_logger

log = get_logger("behind")

T = TypeVar("T")

_writers: weakref.WeakSet[BehindWriter[object]] = weakref.WeakSet()
_writers_lock = threading.Lock()


class BehindWriter(Generic[T]):
    """Queue items with :meth:`put`; one daemon thread hands them to :meth:`_write`.

    Parameters
    ----------
    name:
        Names the thread and the warnings ("<name> queue full").
    linger_s:
        How long the thread waits for more items before writing fewer than
        ``batch_size``: each write has a fixed cost, and that CPU is taken from
        requests. :meth:`flush` cuts the wait short.
    batch_size, queue_size:
        Items per write; items queued at most (more are dropped).
    """

    def __init__(self, name: str, *, linger_s: float, batch_size: int, queue_size: int) -> None:
        self.name = name
        self.linger_s = linger_s
        self.batch_size = batch_size
        self.queue_size = queue_size
        self._items: list[T] = []
        self._lock = threading.Lock()
        self._has_items = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._cut_linger = threading.Event()
        self._pending = 0  # queued or being written
        self._writer_idle = False
        self._flushers = 0
        self._thread: threading.Thread | None = None
        self._warned = False
        with _writers_lock:
            _writers.add(self)  # type: ignore[arg-type]

    def _write(self, batch: list[T]) -> None:
        """Write ``batch``; handle (and report) its own errors."""
        raise NotImplementedError

    def put(self, item: T) -> bool:
        """Queue ``item``. False: the queue was full and it was dropped."""
        with self._lock:
            full = len(self._items) >= self.queue_size
            if not full:
                self._items.append(item)
                self._pending += 1
                # Wake the writer only when it waits for a first item: while it
                # lingers for more, a wake-up per item would only cost it (and the
                # requests) a turn at the interpreter lock.
                if self._writer_idle:
                    self._has_items.notify()
        if full:
            self._warn(f"{self.name} queue full; dropping entries")
            return False
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._ensure_thread()
        return True

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued item is written (or dropped). True when drained."""
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
                    target=self._run, name=f"{self.name}-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._items:
                    self._writer_idle = True
                    self._has_items.wait()
                    self._writer_idle = False
                lingering = (
                    self.linger_s > 0 and len(self._items) < self.batch_size and not self._flushers
                )
            if lingering:
                self._cut_linger.wait(self.linger_s)
            self._cut_linger.clear()
            with self._lock:
                batch = self._items[: self.batch_size]
                del self._items[: self.batch_size]
            try:
                self._write(batch)
            except Exception:  # a bug in _write must not end the thread with items queued
                log.exception("%s: a write failed; %d entries dropped", self.name, len(batch))
            with self._lock:
                self._pending -= len(batch)
                self._drained.notify_all()
                if self._flushers:
                    self._cut_linger.set()  # more was queued meanwhile: no linger for it

    def _warn(self, message: str) -> None:
        """Log ``message`` once until :meth:`_ok` says writing works again."""
        if not self._warned:
            self._warned = True
            log.warning(message)

    def _ok(self) -> None:
        self._warned = False


def flush_behind(timeout_s: float = 5.0) -> bool:
    """Write everything every writer has queued, within ``timeout_s`` in all."""
    deadline = time.monotonic() + timeout_s
    with _writers_lock:
        writers = list(_writers)
    drained = True
    for writer in writers:
        drained = writer.flush(max(0.0, deadline - time.monotonic())) and drained
    return drained
