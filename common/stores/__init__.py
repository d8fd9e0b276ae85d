"""Store clients: one module per store, each with a cached factory.

Factories read ``get_settings()``; the URL must be set (the local server and the
CLI set it after starting an embedded default, see ``common.stores.embedded``).
``reset_stores()`` closes every cached client so tests can change the environment.
"""

from __future__ import annotations


def reset_stores() -> None:
    """Close and forget every cached store client (and the cached settings)."""
    from common.config import get_settings
    from common.stores import mongo, postgres, qdrant_store, redis_store

    postgres.reset()
    redis_store.reset()
    mongo.reset()
    qdrant_store.reset()
    get_settings.cache_clear()


def prepare_stores() -> None:
    """Apply migrations and create collections and indexes, idempotently.

    Qdrant's collections are made when its client is, on first use; here only a
    local folder held by another process is refused.
    """
    from common.stores import mongo, postgres, qdrant_store

    postgres.get_postgres().migrate()
    mongo.ensure_indexes(mongo.get_mongo())
    qdrant_store.check_local_lock()
