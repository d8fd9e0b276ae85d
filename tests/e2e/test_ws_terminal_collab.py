"""The terminal and the shared editor over real WebSockets against the local server.

The server here is this module's own (the run's stores, a short terminal grace
period), so "the shell is killed after a disconnect" takes a second, not the
default thirty.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
import pytest
from pycrdt import Doc, Provider, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.utils.server import LocalServer

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
GRACE_S = 1.0


@pytest.fixture(scope="module")
def ws_server(
    base_env: dict[str, str], _session_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    folder = tmp_path_factory.mktemp("ws-server")
    env = {
        **os.environ,
        **base_env,
        "DATA_DIR": str(folder),
        "QDRANT_PATH": str(folder / "qdrant"),
        "TERMINAL_GRACE_SECONDS": str(GRACE_S),
        "JOB_CONCURRENCY": "0",
    }
    local = LocalServer(env, folder / "server.log").start()
    yield local
    local.stop()


def ws_url(server: LocalServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


class Terminal:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def type(self, line: str) -> None:
        await self.ws.send(json.dumps({"type": "input", "data": line + "\r"}))

    def text(self) -> str:
        raw = "".join(f["data"] for f in self.frames if f.get("type") == "output")
        return ANSI.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")

    async def until(self, pattern: str, timeout_s: float = 10) -> None:
        regex = re.compile(pattern, re.MULTILINE)
        async with asyncio.timeout(timeout_s):
            while not regex.search(self.text()):
                self.frames.append(json.loads(await self.ws.recv()))

    async def until_type(self, kind: str, timeout_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                frame = json.loads(await self.ws.recv())
                self.frames.append(frame)
                if frame.get("type") == kind:
                    return frame


def processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_terminal_echoes_exits_and_dies_with_its_client(
    ws_server: LocalServer, api_key: str
) -> None:
    headers = {"X-API-Key": api_key}
    marker = str(700_000_000 + uuid.uuid4().int % 100_000_000)
    workspaces = Path(ws_server.env["DATA_DIR"]) / "workspaces"

    async def scenario() -> None:
        # echo hi -> hi; exit -> an exit event and a normal close
        url = ws_url(ws_server, f"/ws/ide/terminal/t-{uuid.uuid4().hex[:8]}")
        async with connect(url, additional_headers=headers) as ws:
            term = Terminal(ws)
            assert (await term.until_type("ready"))["reattached"] is False
            await term.type("echo hi")
            await term.until(r"^hi$")
            await term.type("exit 7")
            assert (await term.until_type("exit"))["code"] == 7
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1000
        # A client that goes away: its shell (and what it started) is killed after the grace
        url = ws_url(ws_server, f"/ws/ide/terminal/t-{uuid.uuid4().hex[:8]}?api_key={api_key}")
        async with connect(url) as ws:
            term = Terminal(ws)
            await term.type(f"sleep {marker} & echo started")
            await term.until(r"^started$")
            assert processes_with(marker)
        async with asyncio.timeout(GRACE_S + 5):
            while processes_with(marker) or any(workspaces.iterdir()):
                await asyncio.sleep(0.1)

    asyncio.run(scenario())


class WsChannel:
    """pycrdt's Channel over a real WebSocket (binary frames only)."""

    def __init__(self, ws: ClientConnection, path: str) -> None:
        self.ws, self._path = ws, path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WsChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self.ws.send(message)

    async def recv(self) -> bytes:
        while True:
            message = await self.ws.recv()
            if isinstance(message, bytes) and message[:1] == b"\x00":
                return message  # sync messages; awareness (1) is not the Provider's


class Base64WsChannel(WsChannel):
    """The same over ``?frames=base64``: every message a text frame of its base64, both
    ways (what a browser behind API Gateway sends); ``kinds`` counts what came."""

    def __init__(self, ws: ClientConnection, path: str) -> None:
        super().__init__(ws, path)
        self.kinds: dict[str, int] = {}

    async def send(self, message: bytes) -> None:
        await self.ws.send(base64.b64encode(message).decode())

    async def recv(self) -> bytes:
        while True:
            message = await self.ws.recv()
            kind = "text" if isinstance(message, str) else "binary"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if isinstance(message, str):
                data = base64.b64decode(message, validate=True)
                if data[:1] == b"\x00":
                    return data


@asynccontextmanager
async def editor(
    server: LocalServer,
    api_key: str,
    sid: str,
    channels: list[WsChannel] | None = None,
    **query: str,
) -> AsyncIterator[Text]:
    path = f"/ws/collaboration/{sid}"
    url = ws_url(server, path) + (f"?{urlencode(query)}" if query else "")
    async with connect(url, additional_headers={"X-API-Key": api_key}) as ws:
        doc = Doc()
        kind = Base64WsChannel if query.get("frames") == "base64" else WsChannel
        channel = kind(ws, path)
        if channels is not None:
            channels.append(channel)
        async with Provider(doc, channel) as provider:
            await asyncio.wait_for(provider.synced.wait(), 10)
            yield doc.get("text", type=Text)


async def converged(*texts: Text, length: int, timeout_s: float = 10) -> str:
    async with asyncio.timeout(timeout_s):
        while len({str(t) for t in texts}) != 1 or len(str(texts[0])) != length:
            await asyncio.sleep(0.02)
    return str(texts[0])


def test_two_editors_converge_and_a_third_gets_the_merged_text(
    ws_server: LocalServer, api_key: str
) -> None:
    sid = f"doc-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with editor(ws_server, api_key, sid) as ann, editor(ws_server, api_key, sid) as bob:
            ann += "base "
            await converged(ann, bob, length=5)
            # Both edit the same place at once
            ann.insert(5, "ann")
            bob.insert(5, "bob")
            merged = await converged(ann, bob, length=11)
            assert merged in ("base annbob", "base bobann")
            async with editor(ws_server, api_key, sid) as cat:
                assert str(cat) == merged
        # After everyone left, the document is still there
        async with editor(ws_server, api_key, sid) as later:
            assert str(later) == merged

    asyncio.run(scenario())


def test_a_base64_editor_and_a_binary_editor_converge(ws_server: LocalServer, api_key: str) -> None:
    sid = f"doc-{uuid.uuid4().hex[:8]}"
    channels: list[WsChannel] = []

    async def scenario() -> None:
        async with (
            editor(ws_server, api_key, sid, channels, frames="base64") as ann,
            editor(ws_server, api_key, sid) as bob,
        ):
            ann += "text "
            await converged(ann, bob, length=5)
            ann.insert(5, "ann")
            bob.insert(5, "bob")
            merged = await converged(ann, bob, length=11)
            assert merged in ("text annbob", "text bobann")
        # The base64 editor was sent text frames only
        assert isinstance(channels[0], Base64WsChannel)
        kinds = channels[0].kinds
        assert kinds.get("text", 0) >= 2 and "binary" not in kinds
        async with editor(ws_server, api_key, sid, frames="base64") as later:
            assert str(later) == merged

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("query", "frame"),
    [({}, base64.b64encode(b"\x00\x00\x01\x00").decode()), ({"frames": "base64"}, "not base64!")],
    ids=["text-on-a-binary-connection", "not-base64"],
)
def test_repeated_bad_text_frames_close_4400(
    ws_server: LocalServer, api_key: str, query: dict[str, str], frame: str
) -> None:
    sid = f"doc-{uuid.uuid4().hex[:8]}"
    url = ws_url(ws_server, f"/ws/collaboration/{sid}") + (f"?{urlencode(query)}" if query else "")

    async def scenario() -> None:
        async with connect(url, additional_headers={"X-API-Key": api_key}) as ws:
            for _ in range(5):
                await ws.send(frame)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            assert ws.close_code == 4400

    asyncio.run(scenario())
