"""Qdrant: embeddings of code chunks and of past work.

``QDRANT_URL`` selects a server; otherwise qdrant-client's local mode keeps the
vectors under ``QDRANT_PATH`` (one process at a time holds that folder's lock).
qdrant_client is imported on first use: it is the heaviest import we have.
"""

from __future__ import annotations

from typing import Any

from common.config import Settings, get_settings
from common.errors import ConfigError, StoreUnavailable
from common.lazy import Lazy

# Collection name (before QDRANT_COLLECTION_PREFIX) -> what it holds.
COLLECTIONS = {
    "code_chunks": "embeddings of stored projects' code, for semantic search",
    "agent_memory": "embeddings of past tasks and their checked answers",
}


def collection_name(name: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return settings.QDRANT_COLLECTION_PREFIX + name


def _create() -> Any:
    settings = get_settings()
    if settings.QDRANT_URL:
        from qdrant_client import QdrantClient

        api_key = settings.QDRANT_API_KEY
        return QdrantClient(
            url=settings.QDRANT_URL,
            api_key=(api_key.get_secret_value() if api_key else "") or None,
            timeout=5,
        )
    if settings.on_lambda:
        raise ConfigError("QDRANT_URL: required on Lambda")
    from qdrant_client import QdrantClient

    path = settings.qdrant_path
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        # Local mode refuses a folder another process holds.
        raise StoreUnavailable(
            f"Qdrant local storage at {path} is in use by another process"
            " (QDRANT_PATH); stop it or set QDRANT_URL"
        ) from exc


_client: Lazy[Any] = Lazy(_create, lambda client: client.close())
reset = _client.reset


def get_qdrant() -> Any:
    """The process-wide ``QdrantClient``."""
    return _client.get()


def ping(client: Any) -> None:
    try:
        client.get_collections()
    except Exception as exc:  # the client raises transport-specific errors
        raise StoreUnavailable("Qdrant is unreachable (QDRANT_URL)") from exc


def ensure_collections(client: Any, settings: Settings | None = None) -> None:
    from qdrant_client import models

    settings = settings or get_settings()
    for name in COLLECTIONS:
        full = collection_name(name, settings)
        if not client.collection_exists(full):
            client.create_collection(
                full,
                vectors_config=models.VectorParams(
                    size=settings.EMBEDDING_DIM, distance=models.Distance.COSINE
                ),
            )
