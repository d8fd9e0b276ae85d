"""What a running job's code sees: :class:`JobContext`.

Progress goes two ways: every update is published on Redis pub/sub at once (the
WebSocket follows it), and PostgreSQL, which ``GET /api/jobs/{id}`` reads, is
written when the step changes and otherwise at most once a second; the worker's
heartbeat writes whatever is left. Model tokens go to pub/sub only, and their last
~2 KB become the progress "message".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from uuid import UUID

from common.errors import StoreUnavailable
from common.jobs.events import EventSink
from common.jobs.rules import ProgressThrottle, tail
from common.jobs.store import JobStore, ProgressSnapshot
from common.logs import get_logger

log = get_logger("jobs.context")

MESSAGE_CHARS = 2048
PROGRESS_WRITE_INTERVAL_S = 1.0


class JobCancelled(Exception):  # noqa: N818 - it reads as what happened
    """Raised by :meth:`JobContext.raise_if_cancelled`; the job ends ``cancelled``."""


class JobContext:
    """Given to a job's runner.

    Attributes
    ----------
    job_id, key_id, project_id:
        The job, the API key that submitted it, and its project (if any).
    attempt:
        1 on the first run; more when a worker died during an earlier one.
    """

    def __init__(
        self,
        *,
        job_id: UUID,
        key_id: UUID | None,
        project_id: UUID | None,
        attempt: int,
        worker: str,
        lease_s: float,
        store: JobStore,
        events: EventSink,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.key_id = key_id
        self.project_id = project_id
        self.attempt = attempt
        self.worker = worker
        self.lease_s = lease_s
        self._store = store
        self._events = events
        self._clock = clock
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._step = ""
        self._percent = 0.0
        self._message = ""
        self._dirty = False
        self._throttle = ProgressThrottle(PROGRESS_WRITE_INTERVAL_S)
        self._cancel = threading.Event()
        self.lost = False  # another worker took the job over: our result will be dropped

    # -- for the runner ------------------------------------------------------

    def progress(self, step: str, percent: float, message: str = "") -> None:
        """Report where the job is: ``step`` (a short name), ``percent`` (0-100) and a message."""
        percent = min(100.0, max(0.0, float(percent)))
        now = self._clock()
        with self._lock:
            self._step, self._percent = step, percent
            if message:
                self._message = tail(message, MESSAGE_CHARS)
            self._dirty = True
            due = self._throttle.due(step, now)
            if due:
                self._throttle.wrote(step, now)
        self._events.publish(
            self.job_id,
            {"type": "progress", "step": step, "percent": percent, "message": message},
        )
        if due:
            self.beat()

    def on_token(self, token: str) -> None:
        """A piece of streamed model output: published, and kept as the last message."""
        if not token:
            return
        with self._lock:
            self._message = tail(self._message + token, MESSAGE_CHARS)
            self._dirty = True
        self._events.publish(self.job_id, {"type": "token", "token": token})

    def cancelled(self) -> bool:
        """True once a cancel was asked for (seen at the last heartbeat), or the job
        was taken over by another worker: stop soon, the result will not be used."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`JobCancelled` when :meth:`cancelled`."""
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    # -- for the worker ------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return ProgressSnapshot(self._step, self._percent, self._message)

    def beat(self) -> None:
        """Heartbeat: renew the lease, write unsaved progress, learn about a cancel."""
        with self._write_lock:
            with self._lock:
                progress = ProgressSnapshot(self._step, self._percent, self._message)
                dirty, self._dirty = self._dirty, False
            try:
                answer = self._store.heartbeat(
                    self.job_id,
                    worker=self.worker,
                    attempt=self.attempt,
                    lease_s=self.lease_s,
                    progress=progress if dirty else None,
                )
            except StoreUnavailable:
                with self._lock:
                    self._dirty = self._dirty or dirty
                log.warning("job heartbeat failed", extra={"job_id": str(self.job_id)})
                return
        if answer is None:
            if not self.lost:
                log.warning(
                    "job taken over by another worker; stopping it here",
                    extra={"job_id": str(self.job_id), "attempt": self.attempt},
                )
            self.lost = True
            self._cancel.set()
        elif answer and not self._cancel.is_set():
            self._cancel.set()
            self._events.publish(self.job_id, {"type": "cancel_requested"})
