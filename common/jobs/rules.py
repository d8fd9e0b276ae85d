"""The decisions of the job lifecycle, as pure functions (no I/O: unit-tested alone).

A queue message is only a wake-up call: whatever delivered it (an SQS receive, a
stream read, a reclaim, a sweeper's re-enqueue, a duplicate), PostgreSQL's row
decides what happens. The row is read under ``SELECT ... FOR UPDATE`` and
:func:`decide_claim` picks one of:

``run``
    queued, or running with an expired lease (its worker died): this worker takes
    it, ``attempts`` goes up by one.
``finished``
    succeeded, failed or cancelled: a finished job never runs again; the message is
    acknowledged and dropped.
``busy``
    running under a live lease: another worker is on it. Redis leaves the entry
    pending (reclaimed later if that worker dies); SQS drops the message (the
    sweeper sends the job again if the lease expires).
``cancel``
    a cancel was asked for and nobody is running it: cancelled now, not started.
``give_up``
    ``attempts`` reached the maximum: its workers died that many times (mirroring
    SQS's dead-letter queue after 3 receives), so it fails for good.
"""

from __future__ import annotations

from typing import Literal

from common.jobs.models import FINISHED

ClaimDecision = Literal["run", "finished", "busy", "cancel", "give_up"]


def decide_claim(
    *,
    status: str,
    attempts: int,
    cancel_requested: bool,
    lease_expired: bool,
    max_attempts: int,
) -> ClaimDecision:
    """What a worker holding the row lock does with a delivered job.

    Parameters
    ----------
    status:
        The row's status.
    attempts:
        How many times a worker has started it so far.
    cancel_requested:
        A client asked to cancel it.
    lease_expired:
        Its running worker's lease ran out (or there is none); only read when running.
    max_attempts:
        Starts allowed before the job fails for good.
    """
    if status in FINISHED:
        return "finished"
    if status == "running" and not lease_expired:
        return "busy"
    if cancel_requested:
        return "cancel"
    if attempts >= max_attempts:
        return "give_up"
    return "run"


def final_status(outcome: Literal["succeeded", "failed"], *, cancel_requested: bool) -> str:
    """The status a finished run records: a cancel asked for while it ran wins."""
    return "cancelled" if cancel_requested else outcome


class ProgressThrottle:
    """When a progress update is worth a PostgreSQL write.

    Every update goes to pub/sub at once; PostgreSQL (what ``GET /api/jobs/{id}``
    reads) gets a new step at once and otherwise at most one write per
    ``interval_s``; the heartbeat writes whatever is left.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_write: float | None = None
        self._last_step: str | None = None

    def due(self, step: str, now: float) -> bool:
        if self._last_write is None or step != self._last_step:
            return True
        return now - self._last_write >= self.interval_s

    def wrote(self, step: str, now: float) -> None:
        self._last_write, self._last_step = now, step


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, cut at a line start when one is near."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    # Dropping a partial first line reads better, unless it would drop most of the tail.
    return cut[newline + 1 :] if 0 <= newline < limit // 4 else cut
