"""Stored reports (analyses now, SARIF security scans later): written once, read by id.

A report's id is a random UUID4 string: knowing one report's id says nothing about
another's. A read is scoped to the key that wrote the report, and a report of another
key answers the same :class:`~common.errors.NotFound` as one that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from common.errors import NotFound, StoreUnavailable

COLLECTION = "reports"
# Longer than any id we hand out: a longer one is not ours, and is not worth a query.
MAX_ID_CHARS = 64


def new_report_id() -> str:
    """A fresh, unguessable report id (a caller that must cite it in the body asks first)."""
    return str(uuid.uuid4())


def report_url(report_id: str) -> str:
    return f"/api/reports/{report_id}"


def save_report(
    kind: str,
    *,
    key_id: UUID,
    body: dict[str, Any],
    report_id: str | None = None,
    request_digest: str | None = None,
) -> str:
    """Store ``body`` as a report of ``kind`` owned by ``key_id``.

    Parameters
    ----------
    kind:
        What the body is ("analysis", "sarif", ...): kept beside it for listing.
    body:
        JSON-safe; returned unchanged by :func:`get_report`.
    report_id:
        An id from :func:`new_report_id`, when the body must contain its own id.
    request_digest:
        The digest of the request that made it, to find reports of the same input.

    Returns
    -------
    str
        The report id.

    Raises
    ------
    StoreUnavailable
        MongoDB is not configured or did not take the write.
    """
    from pymongo.errors import PyMongoError

    from common.stores.mongo import get_mongo

    report_id = report_id or new_report_id()
    document = {
        "_id": report_id,
        "kind": kind,
        "key_id": str(key_id),
        "created_at": datetime.now(UTC),
        "request_digest": request_digest,
        "body": body,
    }
    try:
        get_mongo()[COLLECTION].insert_one(document)
    except PyMongoError as exc:
        raise StoreUnavailable("the report was not stored: MongoDB failed (MONGODB_URL)") from exc
    return report_id


def get_report(report_id: str, *, key_id: UUID) -> dict[str, Any]:
    """The body of report ``report_id``, when ``key_id`` wrote it.

    Raises
    ------
    NotFound
        No such report, or another key's.
    StoreUnavailable
        MongoDB is not configured or did not answer.
    """
    from pymongo.errors import PyMongoError

    from common.stores.mongo import get_mongo

    missing = NotFound(f"report {report_id[:MAX_ID_CHARS]} not found")
    if not report_id or len(report_id) > MAX_ID_CHARS:
        raise missing
    try:
        document = get_mongo()[COLLECTION].find_one(
            {"_id": report_id, "key_id": str(key_id)}, {"body": 1}
        )
    except PyMongoError as exc:
        raise StoreUnavailable("reports cannot be read: MongoDB failed (MONGODB_URL)") from exc
    if document is None:
        raise missing
    body = document.get("body")
    if not isinstance(body, dict):
        # Written by save_report, so always a dict; anything else is not a report of ours.
        raise missing
    return body
