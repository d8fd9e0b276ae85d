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

    The contents of a ``files`` mapping are a file's bytes, kept as a file (a NUL
    makes it a binary file, stored and listed but not read as code): only a lone
    surrogate, which no encoding writes, is refused there; their names follow the
    rule like any string. Iterative, so a deeply nested value cannot exhaust the stack.
    """
    stack: list[tuple[Any, str, bool]] = [(value, path, False)]
    while stack:
        item, where, content = stack.pop()
        if isinstance(item, str):
            reason = unstorable(item)
            if reason and not (content and reason == "a NUL character"):
                return where, reason
        elif isinstance(item, dict):
            for key, inner in item.items():
                reason = unstorable(key) if isinstance(key, str) else None
                named = f"{where}.{shown(str(key), 60)}"
                if reason:
                    # ".[key]": the entry's name is at fault, as pydantic says it.
                    return f"{named}.[key]", f"its name holds {reason}"
                files = key == "files" and isinstance(inner, dict)
                if files:
                    for name, text in inner.items():
                        bad = unstorable(name) if isinstance(name, str) else None
                        if bad:
                            return f"{named}.{shown(str(name), 60)}.[key]", f"its name holds {bad}"
                        stack.append((text, f"{named}.{shown(str(name), 60)}", True))
                else:
                    stack.append((inner, named, False))
        elif isinstance(item, list):
            stack.extend((inner, f"{where}.{i}", False) for i, inner in enumerate(item))
    return None
