"""``/ws/jobs/{job_id}``: a job's numbered progress events, then its final state.

Only the key that submitted the job may follow it: another key's job is refused
with CLOSE_NOT_FOUND, exactly like a job that does not exist (as ``GET
/api/jobs/{id}`` answers 404 for both, so ids reveal nothing).

What a client gets:

1. the job's events it missed (all kept ones without ``?since``, those after
   ``since`` with it), numbered by :mod:`common.jobs.events` (``status``,
   ``progress``, ``token``, ``cancel_requested``, each with ``seq`` and ``job_id``);
2. ``{"type": "state", "job": {...}}``: the job as ``GET /api/jobs/{id}`` shows it
   (unnumbered: it is a snapshot, not an event);
3. the live events; when the job ends (a ``status`` event with ``succeeded``,
   ``failed`` or ``cancelled``), the final ``state`` with its result or error, and
   the server closes with 1000. A job already finished gets 1 and 2, then the close.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from common.errors import StoreUnavailable
from common.jobs.models import FINISHED, view_from_row
from common.ws.base import (
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    CLOSE_UNAVAILABLE,
    Outbox,
    WsConnection,
    WsRefused,
)

ROUTE = "jobs"
PATH = "/ws/jobs/{sid}"


def job_id_of(sid: str | None) -> UUID:
    """The job id in the path; only its canonical form is accepted, so one job has
    one stream and one counter (they are keyed by the id's text)."""
    try:
        job_id = UUID(sid or "")
    except ValueError:
        raise WsRefused(CLOSE_NOT_FOUND, f"no job {sid}") from None
    if str(job_id) != sid:
        raise WsRefused(CLOSE_NOT_FOUND, f"no job {sid} (write the id as {job_id})")
    return job_id


def _find_row(job_id: UUID, key_id: UUID) -> dict[str, Any] | None:
    from common.jobs.store import get_job_store

    return get_job_store().find_job(job_id, key_id=key_id)


async def _state(conn: WsConnection) -> dict[str, Any]:
    try:
        row = await asyncio.to_thread(_find_row, job_id_of(conn.sid), conn.key_id)
    except StoreUnavailable as exc:
        raise WsRefused(CLOSE_UNAVAILABLE, exc.message) from None
    if row is None:
        raise WsRefused(CLOSE_NOT_FOUND, f"no job {conn.sid}")
    view: dict[str, Any] = view_from_row(row).model_dump(mode="json")
    return view


class JobsHandler:
    route = ROUTE
    path = PATH
    local_only = False
    # The job id is owned by the jobs table (its key_id), not by the first connection.
    claims_sid = False
    # Without ?since: every event still kept (the stream is bounded anyway).
    replay_without_since = 1_000_000

    def __init__(self) -> None:
        self._ended: set[str] = set()  # connections already sent the final state

    async def connect(self, conn: WsConnection, out: Outbox) -> None:
        await _state(conn)  # refuses a malformed id, a missing job and another key's job

    async def ready(self, conn: WsConnection, out: Outbox) -> None:
        """After the replay: the job as it is now; a finished job then ends the stream."""
        view = await _state(conn)
        await self._send_state(conn, view, out)

    async def on_event(self, conn: WsConnection, event: dict[str, Any], out: Outbox) -> None:
        """After each live event is sent: the job's end sends its final state and closes."""
        if event.get("type") == "status" and event.get("status") in FINISHED:
            await self._send_state(conn, await _state(conn), out)

    async def _send_state(self, conn: WsConnection, view: dict[str, Any], out: Outbox) -> None:
        if conn.id in self._ended:
            return
        await out.send(conn, {"type": "state", "job": view})
        if view["status"] in FINISHED:
            self._ended.add(conn.id)
            await out.close(conn, CLOSE_NORMAL, f"job {view['status']}")

    async def receive(self, conn: WsConnection, message: str | bytes, out: Outbox) -> None:
        return None  # the job is steered over HTTP (DELETE /api/jobs/{id} cancels it)

    async def disconnect(self, conn: WsConnection, out: Outbox) -> None:
        self._ended.discard(conn.id)
