"""Keyset paging for the list endpoints: newest first, and a cursor saying where a page ended.

A cursor is the last item's ``(created_at, id)``, base64url-encoded: opaque to clients,
stable while rows are added (a new item never shifts the next page, as an offset would),
and answered from an index on ``(owner, created_at DESC, id DESC)``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from common.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Cursor(NamedTuple):
    """Where a page ended: the next page starts strictly after (older than) this item."""

    created_at: datetime
    id: UUID


def encode_cursor(created_at: datetime, item_id: UUID) -> str:
    """The cursor of the item ``(created_at, item_id)``, as handed to clients."""
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The position a cursor from :func:`encode_cursor` names.

    Raises
    ------
    InvalidInput
        Not a cursor this server gave (``fields`` names ``query.cursor``).
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        stamp, _, item = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        item_id = UUID(item)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise cursor_error() from exc
    if created_at.tzinfo is None:
        raise cursor_error()
    return Cursor(created_at, item_id)


def cursor_error() -> InvalidInput:
    return InvalidInput(
        "the cursor is not one this server gave: pass next_cursor from the last page as it is",
        details={"fields": [field_error("query.cursor", "cursor_invalid", "not a valid cursor")]},
    )


def field_error(path: str, kind: str, message: str) -> dict[str, Any]:
    """One entry of an ``invalid_input`` error's ``fields``, shaped as FastAPI's are."""
    return {"path": path, "type": kind, "message": message}


def next_cursor(rows: list[dict[str, Any]], limit: int) -> str | None:
    """The cursor after a page read with ``LIMIT limit + 1`` (None: this is the last page).

    ``rows`` is trimmed to ``limit`` in place.
    """
    if len(rows) <= limit:
        return None
    del rows[limit:]
    last = rows[-1]
    return encode_cursor(last["created_at"], UUID(str(last["id"])))
