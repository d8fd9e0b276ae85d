"""The y-websocket wire protocol (y-protocols' sync, awareness and auth messages).

Every frame is binary: ``varUint(messageType)`` then the message. Numbers are
lib0 varUints (7 bits a byte, low first); byte strings are ``varUint(length)`` then
the bytes (``varUint8Array``); strings the same over UTF-8.

- ``messageSync = 0``: ``varUint(step)`` and one ``varUint8Array``: step 1 carries a
  state vector, step 2 and update (2) carry a Yjs update (v1 encoding).
- ``messageAwareness = 1``: ``varUint8Array`` of an awareness update:
  ``varUint(n)`` then n times ``varUint(clientID) varUint(clock) varString(stateJSON)``;
  ``"null"`` means the client is gone.
- ``messageAuth = 2``: ``varUint(0)`` permission denied + ``varString(reason)``.
- ``messageQueryAwareness = 3``: nothing; asks for every known awareness state.

Parsing here is strict (frames come from anyone who holds a key): a short or
overlong frame raises :class:`ProtocolError`, never IndexError.
"""

from __future__ import annotations

from dataclasses import dataclass

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

# An update that changes nothing: no structs, an empty delete set.
EMPTY_UPDATE = b"\x00\x00"
_MAX_VAR_UINT_BYTES = 8  # client ids and clocks are at most 53 bits in JavaScript


class ProtocolError(ValueError):
    """A frame that is not a y-websocket message."""


@dataclass(frozen=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: str  # the state as JSON text; "null": the client is gone

    @property
    def gone(self) -> bool:
        return self.state == "null"


class Reader:
    """Reads lib0 encodings from a frame, with bounds checks."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        value = 0
        for shift in range(0, 7 * _MAX_VAR_UINT_BYTES, 7):
            if self.pos >= len(self.data):
                raise ProtocolError("truncated number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise ProtocolError("number too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("truncated byte string")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("a string is not UTF-8") from exc

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def var_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varUint is unsigned")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def sync_step1(state_vector: bytes) -> bytes:
    return var_uint(MESSAGE_SYNC) + var_uint(SYNC_STEP1) + var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return var_uint(MESSAGE_SYNC) + var_uint(SYNC_STEP2) + var_bytes(update)


def sync_update(update: bytes) -> bytes:
    return var_uint(MESSAGE_SYNC) + var_uint(SYNC_UPDATE) + var_bytes(update)


def awareness_message(entries: list[AwarenessEntry]) -> bytes:
    body = bytearray(var_uint(len(entries)))
    for entry in entries:
        body += var_uint(entry.client_id) + var_uint(entry.clock)
        body += var_bytes(entry.state.encode("utf-8"))
    return var_uint(MESSAGE_AWARENESS) + var_bytes(bytes(body))


def parse_awareness(update: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update (the payload of a messageAwareness)."""
    reader = Reader(update)
    count = reader.var_uint()
    entries = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        entries.append(AwarenessEntry(client_id, clock, reader.var_string()))
    return entries


@dataclass(frozen=True)
class Message:
    """One parsed frame: ``kind`` (MESSAGE_*), ``step`` (SYNC_* for sync, else -1) and
    ``payload`` (state vector, update or awareness update; empty for a query)."""

    kind: int
    step: int
    payload: bytes


def parse_message(frame: bytes) -> Message:
    """Parse one frame.

    Raises
    ------
    ProtocolError
        Not a message this protocol knows, or malformed.
    """
    reader = Reader(frame)
    kind = reader.var_uint()
    if kind == MESSAGE_SYNC:
        step = reader.var_uint()
        if step not in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
            raise ProtocolError(f"unknown sync step {step}")
        return Message(kind, step, reader.var_bytes())
    if kind == MESSAGE_AWARENESS:
        return Message(kind, -1, reader.var_bytes())
    if kind == MESSAGE_QUERY_AWARENESS:
        return Message(kind, -1, b"")
    if kind == MESSAGE_AUTH:
        return Message(kind, -1, frame[reader.pos :])
    raise ProtocolError(f"unknown message type {kind}")
