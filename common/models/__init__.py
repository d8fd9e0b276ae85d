"""Model clients: one protocol, providers behind it.

Nothing here imports a provider's package at import time; ``get_model_client()``
does, on first use, so a cold start that never calls a model never pays for it.
"""

from __future__ import annotations

from common.lazy import Lazy
from common.models.base import (
    ChatResult,
    Embeddings,
    Message,
    ModelClient,
    ResponseFormat,
    TokenCallback,
    Usage,
)

__all__ = [
    "ChatResult",
    "Embeddings",
    "ResponseFormat",
    "Message",
    "ModelClient",
    "TokenCallback",
    "Usage",
    "get_model_client",
    "reset",
]


def _create() -> ModelClient:
    from common.config import get_settings
    from common.models.cache import CachedModelClient
    from common.models.providers import create_model_client
    from common.stores.redis_store import get_redis

    settings = get_settings()
    inner = create_model_client(settings)
    return CachedModelClient(inner, redis=get_redis, ttl_s=settings.CACHE_TTL_SECONDS)


_client: Lazy[ModelClient] = Lazy(_create, lambda client: client.close())
reset = _client.reset


def get_model_client() -> ModelClient:
    """The process-wide model client for the configured provider."""
    return _client.get()
