"""The one rule for text we accept: what PostgreSQL, the filesystem and HTTP can hold.

A NUL character (PostgreSQL's text and JSONB refuse it; a path ends at it) and a lone
UTF-16 surrogate (JSON's ``\\ud800`` escape decodes to one; no UTF-8 encoder writes
it) are refused wherever a request carries them: body, query, path. The web layer
checks every request with :func:`first_unstorable` before a route sees it, so no
store or subprocess downstream meets them. :func:`shown` is how an error message
quotes a caller's text: control characters and surrogates escaped, and cut.
"""

from __future__ import annotations

import re
from typing import Any

_BAD = re.compile(r"[\x00\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored ("a NUL character", "a lone surrogate"), or None."""
    found = _BAD.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate"


def shown(text: str, limit: int = 120) -> str:
    """``text`` safe to quote in a message or a field path."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return _CONTROL.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode(), cut
    )


def first_unstorable(value: Any, path: str = "body") -> tuple[str, str] | None:
    """The first string (a value or a key) in a parsed JSON ``value`` that cannot be
    stored: its field path (``body.files.<key>``) and why; None when all can.

    Iterative, so a deeply nested value cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            reason = unstorable(item)
            if reason:
                return where, reason
        elif isinstance(item, dict):
            for key, inner in item.items():
                reason = unstorable(key) if isinstance(key, str) else None
                named = f"{where}.{shown(str(key), 60)}"
                if reason:
                    # ".[key]": the entry's name is at fault, as pydantic says it.
                    return f"{named}.[key]", f"its name holds {reason}"
                stack.append((inner, named))
        elif isinstance(item, list):
            stack.extend((inner, f"{where}.{i}") for i, inner in enumerate(item))
    return None
