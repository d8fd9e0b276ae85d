"""Unified diffs that ``git apply`` accepts, for any set of changed files."""

from __future__ import annotations

import difflib

_NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(before: dict[str, str], after: dict[str, str], *, context: int = 3) -> str:
    """The changes from ``before`` to ``after`` (path -> content) as one git-style patch.

    Added and deleted files get git's ``new file``/``deleted file`` headers; a last
    line without a newline gets git's marker, so ``git apply`` (and ``patch -p1``)
    reproduce ``after`` byte for byte.
    """
    out: list[str] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        out.append(f"diff --git a/{path} b/{path}\n")
        if old is None:
            out.append("new file mode 100644\n")
        elif new is None:
            out.append("deleted file mode 100644\n")
        lines = difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            "/dev/null" if old is None else f"a/{path}",
            "/dev/null" if new is None else f"b/{path}",
            n=context,
        )
        for line in lines:
            out.append(line)
            if not line.endswith("\n"):
                out.append("\n" + _NO_NEWLINE)
    return "".join(out)


def changed_paths(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
