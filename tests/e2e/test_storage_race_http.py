"""Racing writers of one upload on the running local server: threads PUT the same chunk
at once, each with different bytes, over real HTTP. The part file's lock lets one win
whole and turns the others into 409s, so the stored file is one writer's bytes, never a
mix, and its SHA-256 is the hash the server reports."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator

import httpx

from tests.e2e.test_storage_http import CHUNK, call, start_upload
from tests.utils.server import LocalServer

PIECE = 64 * 1024
WRITERS = 4


def slowly(data: bytes) -> Iterator[bytes]:
    """The body in pieces with pauses: the racing requests overlap for their whole length."""
    for first in range(0, len(data), PIECE):
        yield data[first : first + PIECE]
        time.sleep(0.01)


def race(
    server: LocalServer, key: str, url: str, first: int, candidates: list[bytes], total: int
) -> list[httpx.Response]:
    """Every candidate PUT at ``first`` at once, from its own thread."""
    answers: list[httpx.Response | None] = [None] * len(candidates)
    go = threading.Barrier(len(candidates))

    def send(index: int) -> None:
        data = candidates[index]
        go.wait()
        answers[index] = call(
            server,
            key,
            "PUT",
            url,
            content=slowly(data),
            headers={
                "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}",
                "Content-Length": str(len(data)),
            },
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(candidates))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_racing_writers_of_a_chunk_are_serialised(server: LocalServer, api_key: str) -> None:
    total = 2 * CHUNK
    pid, url = start_upload(server, api_key, "race", filename="raced.bin", size=total)

    # Given four writers sending different bytes for the first chunk at the same time
    heads = [os.urandom(CHUNK) for _ in range(WRITERS)]
    answers = race(server, api_key, url, 0, heads, total)
    # Then one wrote it whole and the others were told the offset moved on
    assert sorted(a.status_code for a in answers) == [200] + [409] * (WRITERS - 1), [
        a.text for a in answers
    ]
    assert all(a.json()["error"]["offset"] == CHUNK for a in answers if a.status_code == 409)
    # When they race again on the last chunk, which completes the upload
    tails = [os.urandom(CHUNK) for _ in range(WRITERS)]
    answers = race(server, api_key, url, CHUNK, tails, total)
    # Then one completed it and the others found it complete (or past their offset)
    assert sorted(a.status_code for a in answers) == [200] + [409] * (WRITERS - 1), [
        a.text for a in answers
    ]
    done = next(a.json() for a in answers if a.status_code == 200)
    assert done["state"] == "complete" and done["offset"] == total
    # And the stored file is one writer's head and one writer's tail, hashed as reported
    whole = call(
        server, api_key, "GET", f"/api/projects/{pid}/download", params={"path": "raced.bin"}
    )
    assert whole.status_code == 200 and len(whole.content) == total
    assert whole.content[:CHUNK] in heads and whole.content[CHUNK:] in tails
    assert hashlib.sha256(whole.content).hexdigest() == done["sha256"]
    shown = call(server, api_key, "GET", f"/api/projects/{pid}").json()
    assert shown["files"] == [
        {
            "path": "raced.bin",
            "size": total,
            "sha256": done["sha256"],
            "version": 1,
            "kind": "binary",
            "reason": "binary (a NUL byte or not UTF-8): stored, not read as code",
        }
    ]
    assert call(server, api_key, "DELETE", f"/api/projects/{pid}").status_code == 204
