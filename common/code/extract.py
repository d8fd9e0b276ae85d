"""Pull code out of a model's answer: fenced blocks, or the whole answer when it has none."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.code.languages import normalize_language

# An opening fence of 3+ backticks or tildes, an optional info string, the body, and
# the same fence closing it. A missing closing fence (a cut-off answer) is allowed.
_FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)"
    r"(?:^(?P<close>(?P=fence))[ \t]*$|\Z)",
    re.M | re.S,
)


@dataclass(frozen=True)
class CodeBlock:
    code: str
    language: str | None
    # A path from the info string (```python src/app.py) or a "# file: x" first line.
    path: str | None = None
    closed: bool = True


_PATH_COMMENT = re.compile(r"^\s*(?:#|//|--|/\*)\s*(?:file(?:name)?|path)\s*:\s*(\S+)", re.I)


def extract_blocks(answer: str) -> list[CodeBlock]:
    """Every fenced block in ``answer``, in order."""
    blocks = []
    for match in _FENCE.finditer(answer):
        info = match.group("info").strip().split()
        language = normalize_language(info[0]) if info else None
        path = next((part for part in info[1:] if "/" in part or "." in part), None)
        if info and language is None and ("/" in info[0] or "." in info[0]):
            path = info[0]
        body = match.group("body")
        first = body.split("\n", 1)[0]
        found = _PATH_COMMENT.match(first)
        if found and path is None:
            path = found.group(1)
        closed = match.group("close") is not None
        blocks.append(
            CodeBlock(code=body.rstrip("\n") + "\n", language=language, path=path, closed=closed)
        )
    return blocks


def extract_code(answer: str, *, language: str | None = None) -> CodeBlock | None:
    """The code the answer gives: the longest block in ``language`` (else any), else the answer.

    Returns None for an empty answer.
    """
    if not answer.strip():
        return None
    blocks = extract_blocks(answer)
    if blocks:
        wanted = normalize_language(language)
        matching = [b for b in blocks if wanted and b.language == wanted] or blocks
        return max(matching, key=lambda b: len(b.code))
    return CodeBlock(code=answer.strip("\n") + "\n", language=normalize_language(language))
