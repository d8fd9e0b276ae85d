"""``/ws/ide/terminal/{sid}``: a shell on a pseudo-terminal, in the sandbox, one per sid.

Frames are JSON text. Client to server::

    {"type": "input", "data": "ls -l\\r"}      keystrokes (a binary frame is raw input too)
    {"type": "resize", "cols": 120, "rows": 40}
    {"type": "ping"}

Server to client::

    {"type": "ready", "sid": ..., "reattached": false, "isolation": "namespace"}  (direct)
    {"type": "output", "data": "...", "seq": 7}   numbered: replayed after ?since=<seq>
    {"type": "exit", "code": 0, "seq": 8}         numbered; then close 1000
    {"type": "pong"}
    {"type": "error", "code": "bad_message", "message": "..."}

The shell runs through :func:`common.sandbox.spawn_pty`: the sandbox's rlimits,
seccomp filter (no sockets), namespaces where allowed, a uid of its own as root and
an environment built from nothing (PATH, HOME, TMPDIR, LANG, TERM, SHELL), in the
workspace ``DATA_DIR/workspaces/<sid>`` (the project's files when ``?project_id=`` names
one of the key's projects; else empty). ``?cols=&rows=`` give the first window size.

One shell per sid: another connection of the same key to the same sid attaches to
the same shell and sees the same output. After the last client left, the shell
lives ``TERMINAL_GRACE_SECONDS`` for a reattach; then every process of it is killed
and the workspace removed. ``TERMINAL_IDLE_SECONDS`` without input or resize close
every client with 4408 and end the shell. The shells live in this process, so the
door must create one handler per process (the local server); behind API Gateway the
route refuses with 4503, since Lambda cannot hold a process between invocations.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from common.config import Settings, get_settings
from common.errors import InvalidInput, NotFound
from common.logs import get_logger
from common.sandbox import Limits, PtyProcess, SandboxUnavailable, remove_tree, spawn_pty
from common.ws.base import (
    CLOSE_BAD_MESSAGE,
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    CLOSE_UNAVAILABLE,
    Outbox,
    WsConnection,
    WsRefused,
)

log = get_logger("ws.terminal")

ROUTE = "terminal"
# A shell is for interactive work (builds, test runs), not a ten-second check: more
# CPU per process, memory and processes than a code action's run.
TERMINAL_LIMITS = Limits(cpu_s=3600, memory_mb=2048, file_size_mb=256, processes=256)
# Session ids name a directory: keep them to a safe alphabet.
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Output is gathered this long before it is published: one frame per burst, not per byte.
_BATCH_S = 0.005
_FRAME_BYTES = 16 * 1024  # output bytes per frame: small even when JSON escapes every byte
_READ_BYTES = 64 * 1024
# Output not yet published past this: stop reading the pty, so a flood (`yes`) blocks
# the program rather than the server's memory.
_BACKLOG_BYTES = 512 * 1024
_INPUT_CHARS = 64 * 1024
_INPUT_BACKLOG_BYTES = 1024 * 1024  # input the shell has not read yet
_BAD_FRAMES = 5  # then close 4400
_SIDE = range(1, 1001)
# Workspaces of this process's live shells (whatever handler instance made them), and
# whether leftovers of an earlier process were swept already.
_live_workspaces: set[Path] = set()
_swept = False


def _shell_argv(settings: Settings) -> list[str]:
    if settings.TERMINAL_SHELL:
        return [settings.TERMINAL_SHELL]
    return ["/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"]


class _Shell:
    """One sid's shell: its process, its clients, the output pump and the timers."""

    def __init__(
        self,
        sid: str,
        key_id: UUID,
        process: PtyProcess,
        out: Outbox,
        idle_s: float,
        forget: Callable[[_Shell], None],
    ) -> None:
        self.sid = sid
        self.key_id = key_id
        self.process = process
        self.out = out
        self.idle_s = idle_s
        self.conns: dict[str, WsConnection] = {}
        self.last_input = time.monotonic()
        self.ending = False
        self.ended = asyncio.Event()
        self._forget = forget
        self._loop = asyncio.get_running_loop()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._output = bytearray()
        self._eof = False
        self._reading = False
        self._wake = asyncio.Event()
        self._input = bytearray()
        self._writing = False
        self._grace: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._resume_reading()
        self._tasks = [
            asyncio.create_task(self._pump(), name=f"terminal-pump-{self.sid}"),
            asyncio.create_task(self._watch_idle(), name=f"terminal-idle-{self.sid}"),
        ]

    # -- clients ---------------------------------------------------------------------

    def attach(self, conn: WsConnection, out: Outbox) -> None:
        self.conns[conn.id] = conn
        self.out = out
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def detach(self, conn: WsConnection, grace_s: float) -> None:
        self.conns.pop(conn.id, None)
        if self.conns or self.ending or self._grace is not None:
            return
        self._grace = asyncio.create_task(self._expire(grace_s), name=f"terminal-grace-{self.sid}")

    async def _expire(self, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        if not self.conns:
            self._grace = None
            await self.end(None, "")

    # -- input -----------------------------------------------------------------------

    def touch(self) -> None:
        self.last_input = time.monotonic()

    def write(self, data: bytes) -> bool:
        """Queue input for the shell; False when too much is already waiting."""
        self.touch()
        if len(self._input) + len(data) > _INPUT_BACKLOG_BYTES:
            return False
        self._input += data
        self._flush_input()
        return True

    def _flush_input(self) -> None:
        while self._input and not self.ending:
            try:
                written = self.process.write(bytes(self._input[:4096]))
            except BlockingIOError:
                # The shell is not reading: wait until the terminal takes more.
                if not self._writing:
                    self._loop.add_writer(self.process.fd, self._flush_input)
                    self._writing = True
                return
            except OSError:
                self._input.clear()  # the shell is gone; the pump reports the exit
                break
            del self._input[:written]
        if self._writing:
            self._loop.remove_writer(self.process.fd)
            self._writing = False

    # -- output ----------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self._reading and not self._eof and not self.ending:
            self._loop.add_reader(self.process.fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.process.fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = self.process.read(_READ_BYTES)
        except BlockingIOError:
            return
        if data:
            self._output += data
            if len(self._output) >= _BACKLOG_BYTES:
                self._pause_reading()
        else:
            self._eof = True
            self._pause_reading()
        self._wake.set()

    async def _pump(self) -> None:
        """Publish output in batches until the terminal closes, then report the exit."""
        while True:
            await self._wake.wait()
            if not self._eof:
                await asyncio.sleep(_BATCH_S)
            self._wake.clear()
            while self._output:
                chunk = bytes(self._output[:_FRAME_BYTES])
                del self._output[:_FRAME_BYTES]
                await self._publish(self._decoder.decode(chunk))
            if self._eof:
                break
            self._resume_reading()
        await self._publish(self._decoder.decode(b"", final=True))
        code = await asyncio.to_thread(self.process.wait, 5.0)
        await self._publish_event({"type": "exit", "code": code})
        await self.end(CLOSE_NORMAL, "the shell exited")

    async def _publish(self, text: str) -> None:
        if text:
            await self._publish_event({"type": "output", "data": text})

    async def _publish_event(self, event: dict[str, Any]) -> None:
        try:
            await self.out.publish(ROUTE, self.sid, event)
        except Exception as exc:  # a store hiccup must not stop the shell's pump
            log.warning("terminal output not delivered", extra={"error": type(exc).__name__})

    async def _watch_idle(self) -> None:
        while True:
            left = self.last_input + self.idle_s - time.monotonic()
            if left <= 0:
                await self.end(CLOSE_IDLE, f"no input for {self.idle_s:g} s")
                return
            await asyncio.sleep(left)

    # -- end ---------------------------------------------------------------------------

    async def end(self, code: int | None, reason: str) -> None:
        """Close the clients (with ``code``), kill every process, remove the workspace."""
        if self.ending:
            await self.ended.wait()
            return
        self.ending = True
        try:
            self._pause_reading()
            if self._writing:
                self._loop.remove_writer(self.process.fd)
                self._writing = False
            current = asyncio.current_task()
            for task in [*self._tasks, self._grace]:
                if task is not None and task is not current:
                    task.cancel()
            conns = list(self.conns.values())
            self.conns.clear()
            if code is not None:
                for conn in conns:
                    with contextlib.suppress(Exception):
                        await self.out.close(conn, code, reason)
            await asyncio.to_thread(self.process.kill)
        finally:
            self._forget(self)
            self.ended.set()


class TerminalHandler:
    """The terminal route. One instance per process: the shells live on it."""

    route = ROUTE
    path = "/ws/ide/terminal/{sid}"
    local_only = True

    def __init__(self) -> None:
        self._shells: dict[str, _Shell] = {}
        self._lock = asyncio.Lock()
        self._bad: dict[str, int] = {}

    async def connect(self, conn: WsConnection, out: Outbox) -> None:
        """Attach ``conn`` to its sid's shell, starting one if there is none.

        Raises
        ------
        WsRefused
            4503 when the terminal is off or this is Lambda (or the sandbox cannot
            start), 4400 for a malformed sid, cols/rows or project_id, 4404 for a
            project that is not the key's, 4403 for another key's shell.
        """
        settings = get_settings()
        if not settings.TERMINAL_ENABLED:
            raise WsRefused(CLOSE_UNAVAILABLE, "the terminal is off on this server")
        if settings.on_lambda or conn.door == "aws":
            raise WsRefused(
                CLOSE_UNAVAILABLE,
                "the terminal needs a long-lived process, which AWS Lambda cannot hold; "
                "use the local server",
            )
        sid = conn.sid or ""
        if not _SID.fullmatch(sid):
            raise WsRefused(CLOSE_BAD_MESSAGE, "the sid must be 1-64 letters, digits, - or _")
        size = _size(conn.params)
        async with self._lock:
            shell = self._shells.get(sid)
            if shell is not None and shell.ending:
                await shell.ended.wait()
                shell = None
            reattached = shell is not None
            if shell is None:
                shell = await self._spawn(conn, out, sid, size, settings)
            elif shell.key_id != conn.key_id:
                raise WsRefused(CLOSE_FORBIDDEN, "this terminal belongs to another key")
            elif size is not None:
                shell.process.resize(*size)
            shell.attach(conn, out)
        await out.send(
            conn,
            {
                "type": "ready",
                "sid": sid,
                "reattached": reattached,
                "isolation": shell.process.isolation,
            },
        )

    async def receive(self, conn: WsConnection, message: str | bytes, out: Outbox) -> None:
        shell = self._shells.get(conn.sid or "")
        if shell is None or shell.ending or conn.id not in shell.conns:
            await self._refuse(conn, out, "no shell is attached to this connection")
            return
        if isinstance(message, bytes):
            if not shell.write(message):
                await self._error(conn, out, "input_backlog", "the shell is not reading input")
            return
        try:
            frame = json.loads(message)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            frame = {}
        kind = frame.get("type")
        if kind == "input":
            data = frame.get("data")
            if not isinstance(data, str) or len(data) > _INPUT_CHARS:
                await self._refuse(conn, out, f"input data: a string, at most {_INPUT_CHARS}")
                return
            # JSON may carry lone surrogates, which UTF-8 cannot: replaced, not fatal.
            if not shell.write(data.encode("utf-8", errors="replace")):
                await self._error(conn, out, "input_backlog", "the shell is not reading input")
        elif kind == "resize":
            cols, rows = _side(frame.get("cols")), _side(frame.get("rows"))
            if cols is None or rows is None:
                await self._refuse(conn, out, "resize needs cols and rows from 1 to 1000")
                return
            shell.touch()
            shell.process.resize(cols, rows)
        elif kind == "ping":
            await out.send(conn, {"type": "pong"})
        else:
            await self._refuse(
                conn, out, 'frames are JSON objects with "type": input, resize or ping'
            )
            return
        self._bad.pop(conn.id, None)  # "repeated" bad frames: in a row

    async def disconnect(self, conn: WsConnection, out: Outbox) -> None:
        self._bad.pop(conn.id, None)
        shell = self._shells.get(conn.sid or "")
        if shell is None or shell.ending or conn.id not in shell.conns:
            return
        grace = get_settings().TERMINAL_GRACE_SECONDS
        if grace <= 0 and len(shell.conns) == 1:
            shell.conns.pop(conn.id, None)
            await shell.end(None, "")
        else:
            shell.detach(conn, grace)

    async def shutdown(self) -> None:
        """End every shell (the door calls this when the server stops)."""
        await asyncio.gather(
            *(
                shell.end(CLOSE_GOING_AWAY, "the server is stopping")
                for shell in list(self._shells.values())
            )
        )

    # -- helpers -------------------------------------------------------------------------

    async def _spawn(
        self,
        conn: WsConnection,
        out: Outbox,
        sid: str,
        size: tuple[int, int] | None,
        settings: Settings,
    ) -> _Shell:
        files = await self._project_files(conn)
        workspaces = Path(settings.DATA_DIR).resolve() / "workspaces"
        await asyncio.to_thread(self._sweep, workspaces, sid)
        shell_argv = _shell_argv(settings)
        cols, rows = size or (80, 24)
        try:
            process = await asyncio.to_thread(
                spawn_pty,
                shell_argv,
                cwd=workspaces / sid,
                files=files,
                limits=TERMINAL_LIMITS,
                # Other sessions' workspaces and the embedded stores' files.
                hide=[Path(settings.DATA_DIR)],
                env={"SHELL": shell_argv[0]},
                cols=cols,
                rows=rows,
            )
        except SandboxUnavailable as exc:
            log.warning("terminal sandbox did not start", extra={"error": str(exc)})
            raise WsRefused(CLOSE_UNAVAILABLE, "the terminal's sandbox could not start") from exc
        except InvalidInput as exc:
            raise WsRefused(
                CLOSE_BAD_MESSAGE, "a project file has a path the sandbox refuses"
            ) from exc
        shell = _Shell(sid, conn.key_id, process, out, settings.TERMINAL_IDLE_SECONDS, self._forget)
        self._shells[sid] = shell
        _live_workspaces.add(process.root)
        shell.start()
        log.info("terminal started", extra={"sid": sid, "isolation": process.isolation})
        return shell

    async def _project_files(self, conn: WsConnection) -> dict[str, str] | None:
        raw = conn.params.get("project_id")
        if not raw:
            return None
        try:
            project_id = UUID(raw)
        except ValueError:
            raise WsRefused(CLOSE_BAD_MESSAGE, "project_id is not a UUID") from None
        from common.projects import load_project_files

        try:
            return await asyncio.to_thread(
                load_project_files, project_id=project_id, owner_key_id=conn.key_id
            )
        except NotFound:
            raise WsRefused(CLOSE_NOT_FOUND, "no such project") from None

    def _sweep(self, workspaces: Path, sid: str) -> None:
        """Remove the sid's stale workspace and, once per process, every workspace left
        by an earlier server (it died with its shells: their grace is long over)."""
        global _swept
        stale = [workspaces / sid]
        if not _swept and workspaces.is_dir():
            _swept = True
            stale += [p for p in workspaces.iterdir() if p.resolve() not in _live_workspaces]
        for path in stale:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                remove_tree(path)

    def _forget(self, shell: _Shell) -> None:
        _live_workspaces.discard(shell.process.root)
        if self._shells.get(shell.sid) is shell:
            del self._shells[shell.sid]

    async def _refuse(self, conn: WsConnection, out: Outbox, message: str) -> None:
        """A bad frame: say so; too many in a row close the connection."""
        count = self._bad.get(conn.id, 0) + 1
        self._bad[conn.id] = count
        if count >= _BAD_FRAMES:
            await out.close(conn, CLOSE_BAD_MESSAGE, "too many bad frames")
        else:
            await self._error(conn, out, "bad_message", message)

    @staticmethod
    async def _error(conn: WsConnection, out: Outbox, code: str, message: str) -> None:
        await out.send(conn, {"type": "error", "code": code, "message": message})


def _side(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _SIDE:
        return None
    return value


def _size(params: dict[str, str]) -> tuple[int, int] | None:
    cols, rows = params.get("cols"), params.get("rows")
    if cols is None and rows is None:
        return None
    try:
        size = _side(int(cols or "80")), _side(int(rows or "24"))
    except ValueError:
        size = None, None
    if size[0] is None or size[1] is None:
        raise WsRefused(CLOSE_BAD_MESSAGE, "cols and rows must be integers from 1 to 1000")
    return size[0], size[1]
