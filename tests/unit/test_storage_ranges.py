"""Content-Range (uploads) and Range (downloads) parsing."""

from __future__ import annotations

import pytest

from common.errors import BadRequest
from common.storage.ranges import (
    ChunkRange,
    RangeNotSatisfiable,
    parse_content_range,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes 0-99/1000", ChunkRange(0, 99, 1000)),
        ("bytes 900-999/1000", ChunkRange(900, 999, 1000)),
        ("bytes 5-5/*", ChunkRange(5, 5, None)),
        (" bytes 0-0/1 ", ChunkRange(0, 0, 1)),
    ],
)
def test_content_range_reads_first_last_and_total(header: str, expected: ChunkRange) -> None:
    assert parse_content_range(header) == expected


def test_content_range_length_counts_both_ends() -> None:
    assert parse_content_range("bytes 10-19/20").length == 10


@pytest.mark.parametrize(
    "header",
    ["bytes 10-5/100", "bytes 0-100/100", "bytes=0-5/10", "items 0-1/2", "bytes -1-3/4", ""],
)
def test_content_range_refuses_what_is_not_a_range_inside_the_total(header: str) -> None:
    with pytest.raises(BadRequest):
        parse_content_range(header)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=95-200", (95, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: served whole, as RFC 9110 allows
        ("lines=0-1", None),
    ],
)
def test_range_gives_the_inclusive_span_of_a_100_byte_file(
    header: str | None, expected: tuple[int, int] | None
) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-160", "bytes=-0", "bytes=9-3"])
def test_range_past_the_end_is_416_with_the_size(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, 100)
    assert caught.value.status == 416
    assert caught.value.headers == {"Content-Range": "bytes */100"}
