"""The WebSocket contract: one message-handling logic, two doors.

A *door* accepts connections and carries frames: the local server (real
WebSockets, ``local/``) or API Gateway's WebSocket API (one Lambda invocation per
``$connect``/message/``$disconnect``, answers by ``post_to_connection``). A *route
handler* (terminal, monitoring, collaboration, job progress) holds the logic and
never knows which door it is behind: it talks to the door through an
:class:`Outbox`.

Numbered events: :meth:`Outbox.publish` appends an event to the (route, sid)
stream (a bounded Redis stream), stamps it with its ``seq`` and delivers it to
every connection of that (route, sid), in every process; a client that
reconnects with ``?since=<seq>`` is sent what it missed before anything new.
:meth:`Outbox.send` is a direct, unnumbered frame to one connection (a reply, a
protocol handshake such as Yjs sync steps).

Close codes are part of the API (documented in the README); handlers refuse with
:class:`WsRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

# Close codes (4000-4999 are the application's). Keep in sync with the README.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_MESSAGE = 4400  # a frame the route cannot read (after repeated bad frames)
CLOSE_UNAUTHORIZED = 4401  # no key, a wrong or revoked key
CLOSE_FORBIDDEN = 4403  # the sid belongs to another key
CLOSE_NOT_FOUND = 4404  # no such route (or job)
CLOSE_RATE_LIMITED = 4429
CLOSE_IDLE = 4408  # idle timeout
CLOSE_UNAVAILABLE = 4503  # the route cannot run behind this door (a pty on Lambda) or is off


class WsRefused(Exception):
    """Close (or refuse) the connection with ``code`` and a one-line ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason must fit 123 bytes


@dataclass
class WsConnection:
    """One client connection, as the connection table keeps it."""

    id: str
    key_id: UUID
    route: str  # "terminal" | "monitoring" | "collaboration" | "jobs"
    sid: str | None  # the session (terminal, collaboration), job id (jobs), None (monitoring)
    connected_at: float
    params: dict[str, str] = field(default_factory=dict)  # query parameters (since, cols...)
    door: str = "local"  # "local" | "aws"


class Outbox(Protocol):
    """How a handler talks to clients, whatever the door."""

    async def send(self, conn: WsConnection, message: dict[str, Any] | bytes) -> bool:
        """One frame to one connection (JSON text for a dict, binary for bytes; bytes
        go as base64 text to a connection opened with ``?frames=base64``).
        False when the connection is gone (it is then removed from the table)."""
        ...

    async def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        """Number ``event`` in the (route, sid) stream and deliver it to every
        connection of that (route, sid) in every process. Returns its seq."""
        ...

    async def broadcast_bytes(
        self, route: str, sid: str, data: bytes, *, exclude: str | None = None
    ) -> None:
        """Binary frame to every connection of (route, sid) but ``exclude`` (a
        connection id), as base64 text to those opened with ``?frames=base64``:
        unnumbered (CRDT updates carry their own recovery)."""
        ...

    async def close(self, conn: WsConnection, code: int, reason: str) -> None: ...


class RouteHandler(Protocol):
    """The logic of one WebSocket route."""

    route: str
    path: str  # e.g. "/ws/ide/terminal/{sid}"
    # True: needs a long-lived process (a pty); behind API Gateway it refuses with
    # CLOSE_UNAVAILABLE and a message that says why.
    local_only: bool

    async def connect(self, conn: WsConnection, out: Outbox) -> None:
        """After auth and sid ownership checks; raise WsRefused to refuse."""
        ...

    async def receive(self, conn: WsConnection, message: str | bytes, out: Outbox) -> None: ...

    async def disconnect(self, conn: WsConnection, out: Outbox) -> None: ...
