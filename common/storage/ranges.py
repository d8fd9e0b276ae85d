"""HTTP byte ranges: the upload's ``Content-Range`` and the download's ``Range``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import AppError, BadRequest

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(AppError):
    status = 416
    code = "range_not_satisfiable"


@dataclass(frozen=True)
class ChunkRange:
    """Where an uploaded chunk goes: bytes ``start``..``end`` inclusive of ``total``."""

    start: int
    end: int
    total: int | None

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str) -> ChunkRange:
    """``bytes a-b/total`` (or ``/*`` when the total is not known yet).

    Raises
    ------
    BadRequest
        Malformed, ``b < a``, or ``b`` beyond the total.
    """
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise BadRequest("Content-Range must read 'bytes <first>-<last>/<total or *>'")
    start, end = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if end < start or (total is not None and end >= total):
        raise BadRequest("Content-Range is not a range inside the total")
    return ChunkRange(start, end, total)


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last inclusive) a ``Range`` header asks of ``size`` bytes.

    ``None`` means the whole file: no header, or one we do not serve (several ranges,
    another unit), which RFC 9110 lets a server ignore.

    Raises
    ------
    RangeNotSatisfiable
        The range starts past the end (416, with ``Content-Range: bytes */size``).
    """
    if not value:
        return None
    match = _RANGE.fullmatch(value.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    unsatisfiable = RangeNotSatisfiable(
        f"the range is outside the file's {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not match[1]:  # a suffix: the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        raise unsatisfiable
    return first, min(last, size - 1)
