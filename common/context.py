"""What the current request is, for code far from the HTTP edge (history, cache, logs).

The web edge opens a :class:`RequestInfo` per request; worker threads get a copy of
the context that points at the same object, so counts they add are seen by the edge
when it writes the response headers.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass
class RequestInfo:
    request_id: str
    key_id: str | None = None
    key_prefix: str | None = None
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def cache_status(self) -> str | None:
        """ "hit" when every model call was answered from the cache, "miss" when any was not."""
        if self.cache_misses:
            return "miss"
        if self.cache_hits:
            return "hit"
        return None


_current: ContextVar[RequestInfo | None] = ContextVar("request_info", default=None)


def begin_request(request_id: str) -> Token[RequestInfo | None]:
    return _current.set(RequestInfo(request_id=request_id))


def end_request(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


def current_request() -> RequestInfo | None:
    return _current.get()
