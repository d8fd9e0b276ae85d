"""The terminal route handler with a fake door: real shells in the real sandbox.

No WebSocket here: a fake Outbox records what the handler sends, publishes and
closes, as the doors' contract (common/ws/base.py) describes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import pytest

from common.config import get_settings
from common.sandbox import namespaces_available
from common.ws.base import (
    CLOSE_BAD_MESSAGE,
    CLOSE_FORBIDDEN,
    CLOSE_IDLE,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    CLOSE_UNAVAILABLE,
    WsConnection,
    WsRefused,
)
from common.ws.terminal import TerminalHandler

KEY = UUID(int=1)
OTHER_KEY = UUID(int=2)
needs_namespaces = pytest.mark.skipif(
    not namespaces_available(), reason="this machine refuses namespaces"
)
MODES = [pytest.param("namespace", marks=needs_namespaces), "fallback"]
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class FakeOutbox:
    """What a door does, in memory: frames per connection, numbered events per stream."""

    def __init__(self) -> None:
        self.handler: Any = None
        self.conns: dict[str, WsConnection] = {}
        self.frames: dict[str, list[dict[str, Any] | bytes]] = {}
        self.closed: dict[str, tuple[int, str]] = {}
        self.seq = 0

    def open(self, sid: str, *, key: UUID = KEY, **params: str) -> WsConnection:
        # Registered before connect(): what connect sends or publishes reaches it.
        conn = WsConnection(
            id=uuid.uuid4().hex,
            key_id=key,
            route="terminal",
            sid=sid,
            connected_at=time.time(),
            params=params,
        )
        self.conns[conn.id] = conn
        self.frames[conn.id] = []
        return conn

    async def send(self, conn: WsConnection, message: dict[str, Any] | bytes) -> bool:
        if conn.id not in self.conns:
            return False
        self.frames[conn.id].append(message)
        return True

    async def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        self.seq += 1
        for conn in list(self.conns.values()):
            if conn.route == route and conn.sid == sid:
                self.frames[conn.id].append({**event, "seq": self.seq})
        return self.seq

    async def broadcast_bytes(
        self, route: str, sid: str, data: bytes, *, exclude: str | None = None
    ) -> None:
        for conn in list(self.conns.values()):
            if conn.route == route and conn.sid == sid and conn.id != exclude:
                self.frames[conn.id].append(data)

    async def close(self, conn: WsConnection, code: int, reason: str) -> None:
        if self.conns.pop(conn.id, None) is None:
            return
        self.closed[conn.id] = (code, reason)
        # As a door does: a closed connection is disconnected from its route.
        await self.handler.disconnect(conn, self)

    async def leave(self, conn: WsConnection) -> None:
        """The client goes away."""
        self.conns.pop(conn.id, None)
        await self.handler.disconnect(conn, self)

    def output(self, conn: WsConnection) -> str:
        """The terminal's text, without escape sequences, one line per line."""
        raw = "".join(
            f["data"] for f in self.frames[conn.id] if isinstance(f, dict) and f["type"] == "output"
        )
        return ANSI.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")

    def of_type(self, conn: WsConnection, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames[conn.id] if isinstance(f, dict) and f["type"] == kind]

    async def until(self, check: Callable[[], object], timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; frames: {self.frames}")
            await asyncio.sleep(0.02)

    async def wait_output(self, conn: WsConnection, pattern: str, timeout_s: float = 10) -> str:
        regex = re.compile(pattern, re.MULTILINE)
        await self.until(lambda: regex.search(self.output(conn)), timeout_s)
        match = regex.search(self.output(conn))
        assert match is not None
        return match.group(0)


async def type_line(
    handler: TerminalHandler, conn: WsConnection, out: FakeOutbox, line: str
) -> None:
    await handler.receive(conn, json.dumps({"type": "input", "data": line + "\r"}), out)


@pytest.fixture
def terminal_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings of a terminal on this test's DATA_DIR; no grace unless a test asks."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TERMINAL_GRACE_SECONDS", "0")
    monkeypatch.delenv("SANDBOX_NETWORK", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def run(scenario: Callable[[TerminalHandler, FakeOutbox], Awaitable[None]]) -> None:
    async def main() -> None:
        handler = TerminalHandler()
        out = FakeOutbox()
        out.handler = handler
        try:
            await asyncio.wait_for(scenario(handler, out), 30)
        finally:
            await handler.shutdown()

    asyncio.run(main())


def tree_of(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.parametrize("mode", MODES)
def test_echo_runs_in_the_sandbox_without_the_servers_secrets(
    mode: str, terminal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret in the server's environment and a file in its data directory
    monkeypatch.setenv("AO_TEST_SECRET", "s3cr3t")
    monkeypatch.setenv("SANDBOX_NETWORK", mode)
    terminal_env.mkdir(parents=True, exist_ok=True)
    (terminal_env / "canary.txt").write_text("store data")

    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("echo-" + mode)
        await handler.connect(conn, out)
        # When the client types commands
        await type_line(handler, conn, out, "echo hi")
        # Then the shell's output comes back as numbered events
        await out.wait_output(conn, r"^hi$")
        ready = out.of_type(conn, "ready")[0]
        assert ready["isolation"] == mode and ready["reattached"] is False
        assert all("seq" in f for f in out.of_type(conn, "output"))
        # And the server's environment is not the shell's
        await type_line(
            handler, conn, out, 'echo "[$AO_TEST_SECRET]" "<$DATABASE_URL>"; env | wc -l'
        )
        await out.wait_output(conn, r"^\[\] <>$")
        assert "s3cr3t" not in out.output(conn)
        # And in its own directory, with no way out to the network
        await type_line(
            handler, conn, out, "pwd; (exec 3<>/dev/tcp/127.0.0.1/9) || echo net-refused"
        )
        await out.wait_output(conn, r"^net-refused$")
        assert re.search(r"workspaces/echo-" + mode + r"$", out.output(conn), re.M)
        if mode == "namespace":
            # And the data directory (other workspaces, store files) is hidden
            await type_line(handler, conn, out, f"cat {terminal_env}/canary.txt || echo hidden")
            await out.wait_output(conn, r"^hidden$")
            assert "store data" not in out.output(conn)

    run(scenario)


def test_exit_reports_the_code_and_closes_normally(terminal_env: Path) -> None:
    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("exits")
        await handler.connect(conn, out)
        await type_line(handler, conn, out, "echo up")
        await out.wait_output(conn, r"^up$")
        procs = tree_of(handler._shells["exits"].process.pid)
        await type_line(handler, conn, out, "exit 3")
        await out.until(lambda: conn.id in out.closed)
        # Then: the exit code, as a numbered event, then close 1000
        assert out.of_type(conn, "exit")[-1]["code"] == 3
        assert out.closed[conn.id][0] == CLOSE_NORMAL
        await out.until(lambda: "exits" not in handler._shells)
        assert len(procs) >= 3 and not alive(procs)
        assert not (terminal_env / "workspaces" / "exits").exists()

    run(scenario)


def test_disconnect_kills_the_whole_tree_after_the_grace_period(
    terminal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERMINAL_GRACE_SECONDS", "0.5")
    get_settings.cache_clear()
    marker = str(900_000 + os.getpid() % 90_000)

    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("grace")
        await handler.connect(conn, out)
        # Given a background job (its own process group) and a foreground one
        await type_line(handler, conn, out, f"sleep {marker} & echo started")
        await out.wait_output(conn, r"^started$")
        await type_line(handler, conn, out, f"sleep {marker}1")
        shell = handler._shells["grace"]
        await out.until(lambda: len(alive(tree_of(shell.process.pid))) >= 5)
        procs = tree_of(shell.process.pid)
        groups = {os.getpgid(p.pid) for p in procs}
        assert len(groups) >= 3  # the launcher's, the shell's, the background job's
        # When the client leaves
        await out.leave(conn)
        # Then within the grace period the shell still runs
        await asyncio.sleep(0.2)
        assert len(alive(procs)) == len(procs)
        # And after it, every process of it is gone, the workspace too
        await out.until(lambda: not alive(procs) and "grace" not in handler._shells, 5)
        assert not (terminal_env / "workspaces" / "grace").exists()

    run(scenario)


def test_reattach_within_grace_gets_the_same_shell_and_both_clients_see_output(
    terminal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERMINAL_GRACE_SECONDS", "5")
    get_settings.cache_clear()

    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        first = out.open("again")
        await handler.connect(first, out)
        await type_line(handler, first, out, "export AO_X=$((40+2)); echo set")
        await out.wait_output(first, r"^set$")
        await out.leave(first)
        # When the client comes back within the grace period
        second = out.open("again")
        await handler.connect(second, out)
        assert out.of_type(second, "ready")[0]["reattached"] is True
        # Then it is the same shell, with its state
        await type_line(handler, second, out, 'echo "x=$AO_X"')
        await out.wait_output(second, r"^x=42$")
        # And a second client of the same key attaches too and sees the same output
        third = out.open("again")
        await handler.connect(third, out)
        await type_line(handler, third, out, "echo both-$((2*3))")
        await out.wait_output(second, r"^both-6$")
        await out.wait_output(third, r"^both-6$")
        # But another key's client is refused
        stranger = out.open("again", key=OTHER_KEY)
        with pytest.raises(WsRefused) as refused:
            await handler.connect(stranger, out)
        assert refused.value.code == CLOSE_FORBIDDEN

    run(scenario)


def test_resize_changes_the_window_size(terminal_env: Path) -> None:
    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        # Given a first size from the query string
        conn = out.open("size", cols="90", rows="30")
        await handler.connect(conn, out)
        await type_line(handler, conn, out, "stty size")
        await out.wait_output(conn, r"^30 90$")
        # When the client resizes
        await handler.receive(conn, json.dumps({"type": "resize", "cols": 132, "rows": 43}), out)
        await type_line(handler, conn, out, "stty size")
        # Then the shell sees the new size
        await out.wait_output(conn, r"^43 132$")

    run(scenario)


def test_idle_timeout_closes_with_4408_and_ends_the_shell(
    terminal_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERMINAL_IDLE_SECONDS", "0.6")
    get_settings.cache_clear()

    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("idle")
        await handler.connect(conn, out)
        shell = handler._shells["idle"]
        await type_line(handler, conn, out, "echo up")
        await out.wait_output(conn, r"^up$")
        procs = tree_of(shell.process.pid)
        assert len(alive(procs)) >= 3
        # Pings keep the connection, not the shell, alive
        await handler.receive(conn, json.dumps({"type": "ping"}), out)
        assert out.of_type(conn, "pong")
        await out.until(lambda: conn.id in out.closed, timeout_s=5)
        assert out.closed[conn.id][0] == CLOSE_IDLE
        await out.until(lambda: not alive(procs) and "idle" not in handler._shells, 5)

    run(scenario)


def test_refusals_say_why(terminal_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(handler: TerminalHandler, out: FakeOutbox, sid: str, **params: str) -> int:
        with pytest.raises(WsRefused) as caught:
            await handler.connect(out.open(sid, **params), out)
        assert caught.value.reason
        return caught.value.code

    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        assert await refused(handler, out, "../etc") == CLOSE_BAD_MESSAGE
        assert await refused(handler, out, "ok", cols="0") == CLOSE_BAD_MESSAGE
        assert await refused(handler, out, "ok", project_id="nope") == CLOSE_BAD_MESSAGE
        monkeypatch.setenv("TERMINAL_ENABLED", "false")
        get_settings.cache_clear()
        assert await refused(handler, out, "off") == CLOSE_UNAVAILABLE
        monkeypatch.setenv("TERMINAL_ENABLED", "true")
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "terminal")
        get_settings.cache_clear()
        assert await refused(handler, out, "lambda") == CLOSE_UNAVAILABLE
        assert not handler._shells

    run(scenario)


def test_bad_frames_get_errors_then_close_4400(terminal_env: Path) -> None:
    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("bad")
        await handler.connect(conn, out)
        await handler.receive(conn, "not json", out)
        await handler.receive(conn, json.dumps({"type": "resize", "cols": "wide"}), out)
        errors = out.of_type(conn, "error")
        assert [e["code"] for e in errors] == ["bad_message", "bad_message"]
        for _ in range(3):
            await handler.receive(conn, json.dumps({"type": "nope"}), out)
        assert out.closed[conn.id][0] == CLOSE_BAD_MESSAGE

    run(scenario)


def test_project_files_are_the_workspace(api_key: str, terminal_env: Path) -> None:
    # api_key first: the run's store settings are in place before this test's own.
    from common.auth import authenticate
    from common.projects import create_project
    from common.storage.tree import store_texts
    from common.stores.postgres import get_postgres
    from common.stores.projects_store import get_project_store

    key_id = authenticate(api_key, store=get_postgres()).key_id
    project = create_project(name="term", owner_key_id=key_id, store=get_project_store())
    store_texts(
        project_id=project.id,
        owner_key_id=key_id,
        files={"src/app.py": "print('from the project')\n"},
        queue_index=False,
    )

    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("proj", key=key_id, project_id=str(project.id))
        await handler.connect(conn, out)
        await type_line(handler, conn, out, "python3 src/app.py")
        await out.wait_output(conn, r"^from the project$")
        # Another key's project is not found
        stranger = out.open("proj2", key=OTHER_KEY, project_id=str(project.id))
        with pytest.raises(WsRefused) as refused:
            await handler.connect(stranger, out)
        assert refused.value.code == CLOSE_NOT_FOUND

    run(scenario)


def test_a_flood_of_output_comes_in_capped_frames(terminal_env: Path) -> None:
    async def scenario(handler: TerminalHandler, out: FakeOutbox) -> None:
        conn = out.open("flood")
        await handler.connect(conn, out)
        await type_line(
            handler, conn, out, "head -c 300000 /dev/zero | tr '\\0' x; echo; echo done"
        )
        await out.wait_output(conn, r"^done$")
        frames = out.of_type(conn, "output")
        assert out.output(conn).count("x") >= 300_000
        assert max(len(f["data"].encode()) for f in frames) <= 16 * 1024
        assert len(frames) < 300  # batched, not one frame per read

    run(scenario)


SERVER_THAT_DIES = """
import sys, time
from pathlib import Path
from common.sandbox import spawn_pty

shell = spawn_pty(["/bin/sh"], cwd=Path(sys.argv[1]), isolation=sys.argv[2])
shell.write(("sleep " + sys.argv[3] + " & sleep " + sys.argv[3] + "1\\n").encode())
print("spawned", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_shell_dies_with_a_server_that_was_killed(mode: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = str(800_000 + os.getpid() % 90_000) + {"namespace": "1", "fallback": "2"}[mode]
    root = Path(__file__).resolve().parents[2]
    # Given a server process with a shell that runs a background and a foreground job
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_THAT_DIES, str(tmp_path / "ws"), mode, marker],
        cwd=root,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert server.stdout is not None and server.stdout.readline().strip() == b"spawned"
    deadline = time.monotonic() + 5
    while len(marked(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(marked(marker)) == 2
    # When the server is killed, with no chance to clean up
    server.kill()
    server.wait()
    # Then the launcher notices and kills every process of the shell
    deadline = time.monotonic() + 5
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marked(marker)


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            argv = proc.info["cmdline"] or []
            if len(argv) == 2 and argv[0] == "sleep" and argv[1].startswith(marker):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except psutil.Error:
            continue
    return found
