"""A big upload through the local server vs ``cp`` of the same file.

Generates a file of ``--size-mb`` (a random megabyte repeated: cheap to make, and the
server still hashes and writes every byte), copies it with ``cp``, then uploads it to
a local server on fresh embedded stores in ``--chunk-mb`` Content-Range chunks, each
streamed from disk by the client. Prints both throughputs, their ratio (goal >= 0.7)
and the server's peak RSS (VmHWM, goal <= 150 MB). The server's SHA-256 is checked
against the file's.

    .venv/bin/python bench/upload.py [--size-mb 2048] [--chunk-mb 64]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _harness import bench_server

MB = 1 << 20


def make_file(path: Path, size_mb: int) -> str:
    block = os.urandom(MB)
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(block)
            hasher.update(block)
    return hasher.hexdigest()


def read_span(path: Path, first: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(first)
        while length > 0:
            piece = source.read(min(MB, length))
            if not piece:
                return
            length -= len(piece)
            yield piece


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--chunk-mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as folder:
        source = Path(folder) / "source.bin"
        digest = make_file(source, args.size_mb)
        size = source.stat().st_size
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(Path(folder) / "copy.bin")], check=True)
        cp_s = time.perf_counter() - started
        (Path(folder) / "copy.bin").unlink()

        # The settings' defaults cap a key at 20 GB and a chunk route body at 8 GB.
        with bench_server("http://127.0.0.1:9") as (server, key):
            assert server.process is not None
            baseline = peak_rss_mb(server.process.pid)
            headers = {"X-API-Key": key}
            with httpx.Client(base_url=server.url, headers=headers, timeout=600) as client:
                pid = client.post("/api/projects", json={"name": "bench"}).json()["id"]
                upload = client.post(
                    f"/api/projects/{pid}/uploads",
                    json={"filename": "big.bin", "size": size, "sha256": digest},
                ).json()
                chunk = args.chunk_mb * MB
                started = time.perf_counter()
                answer: dict[str, object] = {}
                for first in range(0, size, chunk):
                    length = min(chunk, size - first)
                    response = client.put(
                        upload["upload_url"],
                        content=read_span(source, first, length),
                        headers={
                            "Content-Range": f"bytes {first}-{first + length - 1}/{size}",
                            "Content-Length": str(length),
                        },
                    )
                    response.raise_for_status()
                    answer = response.json()
                upload_s = time.perf_counter() - started
            rss = peak_rss_mb(server.process.pid)
        ok = answer.get("state") == "complete" and answer.get("sha256") == digest
        cp_rate, up_rate = size / MB / cp_s, size / MB / upload_s
        print(f"file: {size / MB:.0f} MB, chunks of {args.chunk_mb} MB")
        print(f"cp:     {cp_s:6.2f} s  {cp_rate:7.1f} MB/s")
        print(f"upload: {upload_s:6.2f} s  {up_rate:7.1f} MB/s (sha256 checked: {ok})")
        print(f"ratio upload/cp: {up_rate / cp_rate:.2f}x (goal >= 0.7)")
        print(f"server peak RSS (VmHWM): {rss:.0f} MB (goal <= 150); {baseline:.0f} MB before")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
