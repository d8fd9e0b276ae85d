"""A 25 MB Figma file goes through in one pass, in seconds, with memory that stays flat."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

from common.figma.intake import Intake
from common.figma.service import analyse
from tests.fixtures.figma.generate import write_big_file

TARGET_BYTES = 25_000_000
READ_BYTES = 1 << 20
# The file must not be held (nor copied) whole: the parser's state, the open path of
# the tree and the counted values are what may grow, far below the file's size.
MAX_PEAK_GROWTH_BYTES = 32 * 1024 * 1024
MAX_SECONDS = 20.0


class CountingSink:
    """Takes the bytes as GridFS would, keeping only their count."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def close(self) -> str:
        return "counted"

    def abort(self) -> None:
        pass


def test_a_25_mb_file_is_parsed_once_with_flat_memory(tmp_path: Path) -> None:
    # Given a generated file of ~25 MB on disk
    path = tmp_path / "big.json"
    size = write_big_file(path, target_bytes=TARGET_BYTES)
    assert size >= TARGET_BYTES
    sink = CountingSink()
    # When it is read in 1 MB chunks through the intake, under tracemalloc
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        intake = Intake(open_sink=lambda: sink)
        with path.open("rb") as source:
            while chunk := source.read(READ_BYTES):
                intake.feed(chunk)
        intake.finish()
        analysis = analyse(intake)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    print(
        f"\n{size / 1e6:.1f} MB, {analysis.stats.nodes} nodes: {seconds:.2f} s under tracemalloc,"
        f" peak growth {peak / 1e6:.2f} MB ({analysis.stats.parser})"
    )
    # Then every byte was stored once, the walk saw the whole tree, and it was quick and flat
    assert sink.bytes == size
    assert analysis.stats.nodes > 20_000 and analysis.inventory.counts.sets == 6
    assert analysis.stats.tokens["color"]["values"] == 48
    assert seconds < MAX_SECONDS
    assert peak < MAX_PEAK_GROWTH_BYTES
