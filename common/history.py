"""Every model attempt, kept in MongoDB so a user can see why an answer took three tries.

Writes leave the request's path (common/behind.py): entries go to a bounded queue
that one thread drains into the ``history`` collection, flushed by every Lambda door
before it returns and by the local server on shutdown. A full queue or a Mongo
outage drops entries with one warning: history is for people, never a reason to
fail a request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.behind import BehindWriter
from common.lazy import Lazy

QUEUE_SIZE = 10_000
BATCH_SIZE = 200
# Each write costs the driver about a millisecond of CPU (server selection, encoding)
# whatever its size: linger a moment for more.
LINGER_S = 0.2
# Raw answers are kept whole up to this size: enough to see what a model did wrong.
MAX_RAW_CHARS = 20_000


class HistoryWriter(BehindWriter[dict[str, Any]]):
    def __init__(self) -> None:
        # The sizes are read here, not at import, so a test can shrink them.
        super().__init__("history", linger_s=LINGER_S, batch_size=BATCH_SIZE, queue_size=QUEUE_SIZE)

    def record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("created_at", datetime.now(UTC))
        self.put(entry)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            from common.stores.mongo import get_mongo

            get_mongo()["history"].insert_many(batch, ordered=False)
            self._ok()
        except Exception as exc:  # Mongo down or misconfigured: drop, warn once
            self._warn(f"history not written ({type(exc).__name__}); dropping {len(batch)}")


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
