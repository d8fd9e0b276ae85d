"""A process-wide object made on first use, closed and forgotten on ``reset()``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """Thread-safe lazy singleton: the cached-factory pattern of every store client.

    Parameters
    ----------
    create:
        Makes the object; called at most once until ``reset()``.
    close:
        Releases it on ``reset()`` (connections, file locks).
    """

    def __init__(self, create: Callable[[], T], close: Callable[[T], None] | None = None) -> None:
        self._create = create
        self._close = close
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._create()
            return self._value

    @property
    def made(self) -> bool:
        """Whether the object exists now (without making it)."""
        return self._value is not None

    def reset(self) -> None:
        with self._lock:
            value, self._value = self._value, None
        if value is not None and self._close is not None:
            self._close(value)
