"""A big Figma file over real HTTP to the local server: streamed in, stored, analysed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.fixtures.figma.generate import write_big_file
from tests.utils.server import LocalServer

DESIGN_SYSTEM = Path(__file__).resolve().parents[1] / "fixtures" / "figma" / "design_system.json"
TARGET_BYTES = 25_000_000
SEND_BYTES = 256 * 1024
MAX_SECONDS = 30.0


def rss_kb(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(SEND_BYTES):
            yield chunk


def test_a_25_mb_file_is_taken_over_http_in_one_pass(
    server: LocalServer, api_key: str, tmp_path: Path
) -> None:
    from common.figma.store import document_bytes

    # Given a ~25 MB file (25 times MAX_BODY_BYTES), sent in chunks with no length
    path = tmp_path / "big.json"
    size = write_big_file(path, target_bytes=TARGET_BYTES)
    assert server.process is not None
    pid = server.process.pid
    # A small file first: what the route imports on first use is not the big file's cost.
    warm = httpx.post(
        server.url + "/api/figma/analyze",
        content=DESIGN_SYSTEM.read_bytes(),
        headers={"X-API-Key": api_key, "content-type": "application/json"},
        timeout=60,
    )
    assert warm.status_code == 200, warm.text[:500]
    rss_before = rss_kb(pid, "VmRSS")
    started = time.perf_counter()
    # When it is posted
    response = httpx.post(
        server.url + "/api/figma/analyze",
        content=chunks(path),
        headers={"X-API-Key": api_key, "content-type": "application/json"},
        timeout=120,
    )
    seconds = time.perf_counter() - started
    peak = rss_kb(pid, "VmHWM")
    print(
        f"\n{size / 1e6:.1f} MB over HTTP in {seconds:.2f} s; server RSS {rss_before / 1024:.0f}"
        f" MB before, peak {peak / 1024:.0f} MB"
    )
    # Then it is analysed, and stored byte for byte
    assert response.status_code == 200, response.text[:500]
    answer = response.json()
    assert answer["document"]["bytes"] == size and answer["stats"]["nodes"] > 20_000
    assert answer["stats"]["parser"] == "yajl2_c"
    assert answer["inventory"]["counts"]["sets"] == 6
    assert seconds < MAX_SECONDS
    # And the server never held it whole: its peak grew by less than the file's size
    assert (peak - rss_before) * 1024 < size
    stored = sum(len(c) for c in document_bytes(answer["document"]["gridfs_id"]))
    assert stored == size
    # And the report is there
    report = httpx.get(
        server.url + answer["report_url"], headers={"X-API-Key": api_key}, timeout=30
    )
    assert report.status_code == 200 and report.json()["document"] == answer["document"]


def test_every_other_route_keeps_max_body_bytes(server: LocalServer, api_key: str) -> None:
    body = b'{"code": "' + b"x" * 2_000_000 + b'"}'

    response = httpx.post(
        server.url + "/api/explain",
        content=body,
        headers={"X-API-Key": api_key, "content-type": "application/json"},
        timeout=60,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "MAX_BODY_BYTES" in response.json()["error"]["message"]
