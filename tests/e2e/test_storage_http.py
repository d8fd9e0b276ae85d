"""Project storage on the running local server: a chunked upload cut off mid-chunk,
resumed from the offset the server reports, verified, then downloaded by range."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.utils.server import LocalServer

CHUNK = 1 << 20


def call(server: LocalServer, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"X-API-Key": key, **kwargs.pop("headers", {})}
    return httpx.request(method, server.url + path, headers=headers, timeout=60, **kwargs)


def start_upload(server: LocalServer, key: str, name: str, **upload: Any) -> tuple[str, str]:
    """A new project ``name`` and an upload started in it: (project id, upload URL)."""
    created = call(server, key, "POST", "/api/projects", json={"name": name})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    started = call(server, key, "POST", f"/api/projects/{pid}/uploads", json=upload)
    assert started.status_code == 201, started.text
    return pid, started.json()["upload_url"]


def send_half_and_hang_up(
    server: LocalServer, key: str, path: str, data: bytes, first: int, total: int
) -> None:
    """Announce a whole chunk, send half of it, and close the connection: a dropped upload."""
    netloc = urlsplit(server.url)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {netloc.netloc}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n"
        f"Content-Range: bytes {first}-{first + len(data) - 1}/{total}\r\n\r\n"
    ).encode()
    with socket.create_connection((netloc.hostname, netloc.port), timeout=10) as sock:
        sock.sendall(head + data[: len(data) // 2])
        time.sleep(0.3)  # let the server write what came before the hang-up


def test_an_interrupted_upload_resumes_and_downloads_by_range(
    server: LocalServer, api_key: str
) -> None:
    data = os.urandom(3 * CHUNK + 12345)
    digest = hashlib.sha256(data).hexdigest()
    pid, url = start_upload(
        server, api_key, "big", filename="blob.bin", size=len(data), sha256=digest
    )

    # Given the first chunk sent whole
    first = call(
        server,
        api_key,
        "PUT",
        url,
        content=data[:CHUNK],
        headers={"Content-Range": f"bytes 0-{CHUNK - 1}/{len(data)}"},
    )
    assert first.status_code == 200 and first.json()["offset"] == CHUNK, first.text
    # When the second is cut off half way
    send_half_and_hang_up(server, api_key, url, data[CHUNK : 2 * CHUNK], CHUNK, len(data))
    deadline = time.monotonic() + 10
    offset = CHUNK
    while time.monotonic() < deadline and offset == CHUNK:
        offset = call(server, api_key, "GET", url).json()["offset"]
        time.sleep(0.1)
    # Then the server kept what arrived, and says where to go on
    assert CHUNK < offset < 2 * CHUNK
    # When the client resumes from there in chunks
    while offset < len(data):
        piece = data[offset : offset + CHUNK]
        answer = call(
            server,
            api_key,
            "PUT",
            url,
            content=piece,
            headers={"Content-Range": f"bytes {offset}-{offset + len(piece) - 1}/{len(data)}"},
        )
        assert answer.status_code == 200, answer.text
        offset = answer.json()["offset"]
    # Then the whole file arrived intact
    body = answer.json()
    assert body["state"] == "complete" and body["sha256"] == digest, body
    shown = call(server, api_key, "GET", f"/api/projects/{pid}").json()
    assert shown["files"][0]["size"] == len(data)
    # And it downloads whole and by range
    whole = call(
        server, api_key, "GET", f"/api/projects/{pid}/download", params={"path": "blob.bin"}
    )
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == digest
    part = call(
        server,
        api_key,
        "GET",
        f"/api/projects/{pid}/download",
        params={"path": "blob.bin"},
        headers={"Range": "bytes=-100"},
    )
    assert part.status_code == 206 and part.content == data[-100:]
    assert part.headers["content-range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    # And deleting the project removes it
    assert call(server, api_key, "DELETE", f"/api/projects/{pid}").status_code == 204
    assert call(server, api_key, "GET", f"/api/projects/{pid}").status_code == 404
