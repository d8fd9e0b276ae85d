"""MongoDB (any server speaking the wire protocol): documents that have no fixed shape.

pymongo is imported on first use, not at import time: a handler that never touches
Mongo should not pay for it at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.config import get_settings
from common.errors import StoreUnavailable
from common.lazy import Lazy

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

# Collections and their indexes: (keys, options). Created idempotently at start-up.
COLLECTIONS: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "project_meta": [([("project_id", 1)], {"unique": True})],
    # The files a project was last indexed with: what actions read for `project_id`.
    "project_files": [([("project_id", 1), ("path", 1)], {"unique": True})],
    # common/storage: one document per stored file, one per upload in progress.
    "storage_files": [
        ([("project_id", 1), ("path", 1)], {"unique": True}),
        ([("owner_key_id", 1)], {}),
    ],
    "upload_sessions": [([("project_id", 1)], {})],
    "history": [([("key_id", 1), ("created_at", -1)], {}), ([("request_id", 1)], {})],
    "reports": [([("key_id", 1), ("created_at", -1)], {}), ([("kind", 1)], {})],
    "figma_documents": [([("key_id", 1), ("file_key", 1)], {})],
    # /ws/collaboration/{sid}: a snapshot per document, the Yjs updates appended since.
    "collab_documents": [([("sid", 1)], {"unique": True})],
    "collab_updates": [([("sid", 1), ("_id", 1)], {})],
}


def _create() -> MongoClient[dict[str, Any]]:
    settings = get_settings()
    if not settings.MONGODB_URL:
        raise StoreUnavailable("MONGODB_URL is not set")
    from pymongo import MongoClient

    return MongoClient(
        settings.MONGODB_URL,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        tz_aware=True,
        appname="ai-orchestrator",
    )


_client: Lazy[MongoClient[dict[str, Any]]] = Lazy(_create, lambda client: client.close())
reset = _client.reset


def get_mongo() -> Database[dict[str, Any]]:
    """The process-wide database: the URL's own database, else ``MONGODB_DB``."""
    return _client.get().get_default_database(default=get_settings().MONGODB_DB)


def ping(db: Database[dict[str, Any]]) -> None:
    from pymongo.errors import PyMongoError

    try:
        db.command("ping")
    except PyMongoError as exc:
        raise StoreUnavailable("MongoDB is unreachable (MONGODB_URL)") from exc


def ensure_indexes(db: Database[dict[str, Any]]) -> None:
    existing = set(db.list_collection_names())
    for name, indexes in COLLECTIONS.items():
        if name not in existing:
            db.create_collection(name)
        for keys, options in indexes:
            db[name].create_index(keys, **options)
