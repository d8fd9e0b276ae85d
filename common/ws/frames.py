"""Frames on the wire: JSON text, and messages too big for one API Gateway frame.

API Gateway refuses a ``post_to_connection`` over 128 KB, so a bigger message is
sent as parts, in order, each a JSON text frame under :data:`MAX_FRAME_BYTES`::

    {"type": "part", "id": "<message id>", "part": 0, "parts": 3,
     "encoding": "utf-8" | "base64", "data": "..."}

A client keeps the parts of one ``id`` and, once it has ``parts`` of them, joins
their ``data`` in ``part`` order: ``utf-8`` parts join into the JSON text of the
message; ``base64`` parts are each decoded and joined into the bytes of a binary
message. Only API Gateway's door splits: the local server has no such limit, and
a binary protocol (Yjs) must get its frames whole there. A client that may be
behind either door handles ``"type": "part"`` (it never appears locally).

Binary messages as text: API Gateway refuses binary frames from clients (it closes
with 1003), so a connection may opt in at connect with ``?frames=base64``
(:data:`FRAMES_PARAM`; kept with the connection's parameters). Both doors then send
it each binary message as a text frame holding its base64 (standard alphabet, with
padding; behind API Gateway split first, so a part's ``"encoding": "base64"`` data
is a piece of the message's bytes), and a route that reads binary messages takes
its text frames as base64 (:func:`binary_from_text`). The default is
``binary``: binary frames both ways.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any

# API Gateway's limit is 128 KiB per message; the margin is for the envelope.
MAX_FRAME_BYTES = 128 * 1024
_BUDGET = MAX_FRAME_BYTES - 1024

Frame = str | bytes

FRAMES_PARAM = "frames"
FRAMES_BINARY = "binary"
FRAMES_BASE64 = "base64"
FRAMES_VALUES = (FRAMES_BINARY, FRAMES_BASE64)


def base64_frames(params: Mapping[str, str]) -> bool:
    """True when a connection with these query parameters asked for ``frames=base64``."""
    return params.get(FRAMES_PARAM) == FRAMES_BASE64


def as_text(frame: Frame) -> str:
    """A frame for a ``frames=base64`` connection: bytes as their base64, text as is."""
    return base64.b64encode(frame).decode("ascii") if isinstance(frame, bytes) else frame


def binary_from_text(text: str) -> bytes:
    """The bytes of a client's base64 text frame.

    Raises
    ------
    ValueError
        Not strict standard base64 (other characters, bad padding).
    """
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("a text frame is not base64") from exc


def dumps(message: dict[str, Any]) -> str:
    """The JSON text of ``message`` (compact: fan-out sends it to every subscriber)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)


def _envelope(msg_id: str, part: int, parts: int, encoding: str, data: str) -> str:
    return dumps(
        {
            "type": "part",
            "id": msg_id,
            "part": part,
            "parts": parts,
            "encoding": encoding,
            "data": data,
        }
    )


def _text_chunks(text: str, budget: int) -> list[str]:
    """``text`` cut into pieces whose JSON-escaped UTF-8 form fits ``budget`` bytes."""
    chunks: list[str] = []
    start = 0
    size = budget
    while start < len(text):
        piece = text[start : start + size]
        encoded = len(json.dumps(piece, ensure_ascii=False).encode())
        if encoded > budget:
            # Escapes and multi-byte characters grew it: shrink in proportion and retry.
            size = max(1, int(size * budget / encoded) - 1)
            continue
        chunks.append(piece)
        start += len(piece)
        size = budget
    return chunks


def split_frame(frame: Frame, *, limit: int = MAX_FRAME_BYTES) -> list[Frame]:
    """``frame`` as is when it fits ``limit`` bytes, else its parts (see the module doc).

    Parameters
    ----------
    frame:
        JSON text (a dict already dumped) or the bytes of a binary message.
    limit:
        The largest frame; tests pass a small one.

    Returns
    -------
    list[Frame]
        One or more frames, each at most ``limit`` bytes once UTF-8 encoded.
    """
    size = len(frame.encode()) if isinstance(frame, str) else len(frame)
    if size <= limit:
        return [frame]
    budget = limit - 200 if limit < MAX_FRAME_BYTES else _BUDGET
    msg_id = uuid.uuid4().hex
    if isinstance(frame, str):
        chunks = _text_chunks(frame, budget)
        return [_envelope(msg_id, i, len(chunks), "utf-8", c) for i, c in enumerate(chunks)]
    raw = budget * 3 // 4  # base64 grows 3 bytes into 4
    pieces = [frame[i : i + raw] for i in range(0, len(frame), raw)]
    return [
        _envelope(msg_id, i, len(pieces), "base64", base64.b64encode(p).decode())
        for i, p in enumerate(pieces)
    ]


class Reassembler:
    """The client side of :func:`split_frame` (used by the tests and the bench)."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[int, str]] = {}

    def feed(self, frame: Frame) -> Frame | None:
        """The whole message once complete; ``frame`` itself when it is not a part;
        None while parts are missing."""
        if isinstance(frame, bytes) or not frame.startswith('{"type":"part"'):
            return frame
        envelope = json.loads(frame)
        parts = self._parts.setdefault(envelope["id"], {})
        parts[int(envelope["part"])] = envelope["data"]
        if len(parts) < int(envelope["parts"]):
            return None
        del self._parts[envelope["id"]]
        ordered = [parts[i] for i in range(int(envelope["parts"]))]
        if envelope["encoding"] == "base64":
            return b"".join(base64.b64decode(p) for p in ordered)
        return "".join(ordered)
