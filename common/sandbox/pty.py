"""A long-lived program (a shell) on a pseudo-terminal, confined like any sandbox run.

:func:`spawn_pty` starts ``argv`` through the same launcher as :meth:`Sandbox.run`
(namespaces or fallback, rlimits, no capabilities, seccomp without sockets, a uid of
its own as root, an environment built from nothing), with the terminal's slave side
as its standard streams and controlling terminal. There is no wall timeout: the
caller decides when the program has lived long enough (an idle timeout, a
disconnect) and calls :meth:`PtyProcess.kill`, which ends the whole process tree,
not only the shell's process group (its jobs have groups of their own).

The master side is non-blocking, for an event loop's ``add_reader``; nothing here
spawns threads or forks Python code (``subprocess`` execs at once), so it is safe to
call from a server with threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.sandbox.sandbox import (
    FALLBACK,
    Limits,
    Sandbox,
    SandboxUnavailable,
    _kill_uid,
    _stop_tree,
)

# How long the launcher may take to confine itself (mounts, uid, seccomp) before the
# spawn counts as failed.
_READY_S = 10.0
# Terminal sizes a client may ask for; a bigger one is clamped, not refused.
_MAX_SIDE = 1000


class PtyProcess:
    """A sandboxed program on a pty. Made by :func:`spawn_pty`, not directly.

    Attributes
    ----------
    fd:
        The master side (non-blocking): read the program's output, write its input.
    pid:
        The process the server started (``unshare`` or the launcher); its group.
    isolation:
        ``"namespace"`` or ``"fallback"``, as for :class:`~common.sandbox.RunResult`.
    """

    def __init__(self, box: Sandbox, proc: subprocess.Popen[bytes], fd: int, status_fd: int):
        self._box = box
        self._proc = proc
        self.fd = fd
        self._status_fd = status_fd
        self._status = b""
        self.pid = proc.pid
        self.isolation = box.isolation
        self.root = box.root
        self._killed = False

    # -- terminal --------------------------------------------------------------------

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes of output; ``b""`` once the program and everything
        holding the terminal are gone.

        Raises
        ------
        BlockingIOError
            Nothing to read yet.
        """
        try:
            return os.read(self.fd, size)
        except OSError as exc:
            # Linux answers EIO on the master when no process holds the slave any more.
            if isinstance(exc, BlockingIOError):
                raise
            return b""

    def write(self, data: bytes) -> int:
        """Write input; returns how much the terminal took (it may take less).

        Raises
        ------
        BlockingIOError
            The terminal's input buffer is full (the program is not reading).
        """
        return os.write(self.fd, data)

    def resize(self, cols: int, rows: int) -> None:
        """Set the window size; the kernel sends SIGWINCH to the foreground job."""
        cols = max(1, min(int(cols), _MAX_SIDE))
        rows = max(1, min(int(rows), _MAX_SIDE))
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    # -- life ------------------------------------------------------------------------

    def poll(self) -> int | None:
        """The program's exit code once everything has ended, else None.

        A program killed by a signal gets ``128 + signal``, as a shell reports it.
        """
        if self._proc.poll() is None:
            return None
        return self._exit_code()

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Block until the program has ended (at most ``timeout_s``); its exit code."""
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return self._exit_code()

    def kill(self) -> None:
        """End every process of the program, close the terminal, remove the sandbox
        (the workdir included). Idempotent; blocks for up to about a second."""
        if self._killed:
            return
        self._killed = True
        proc = self._proc
        try:
            # The launcher is asked only while it runs: the shell's own session has
            # left our process group, and only the launcher (the subreaper) reaches it.
            _stop_tree(proc.pid, ask_launcher=self.isolation == FALLBACK and proc.poll() is None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            if self._box.uid is not None and self.isolation == FALLBACK:
                _kill_uid(self._box.uid)
        finally:
            self._read_status()
            for fd in (self.fd, self._status_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._box.close()

    @property
    def killed(self) -> bool:
        return self._killed

    def _read_status(self) -> None:
        with contextlib.suppress(OSError):
            os.set_blocking(self._status_fd, False)
            while chunk := os.read(self._status_fd, 4096):
                self._status += chunk

    def _exit_code(self) -> int:
        if not self._killed:
            self._read_status()
        final: dict[str, Any] = {}
        for line in self._status.splitlines():
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict) and ("exit" in message or "signal" in message):
                    final = message
        if "exit" in final:
            return int(final["exit"])
        if "signal" in final:
            return 128 + int(final["signal"])
        code = self._proc.returncode
        return 128 - code if code is not None and code < 0 else int(code or 0)


def spawn_pty(
    argv: Sequence[str],
    *,
    cwd: Path,
    files: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
    isolation: str | None = None,
    hide: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    cols: int = 80,
    rows: int = 24,
) -> PtyProcess:
    """Start ``argv`` on a new pseudo-terminal inside a sandbox whose root is ``cwd``.

    Blocks until the sandbox is set up (well under a second; call it from a worker
    thread in async code).

    Parameters
    ----------
    argv:
        The program (a shell) and its arguments, found on the sandbox's PATH.
    cwd:
        The working directory, created if missing, handed to the sandbox's uid and
        removed by :meth:`PtyProcess.kill`.
    files:
        Relative path -> text, written into ``cwd`` first (checked as
        :meth:`Sandbox.write` does).
    limits:
        CPU seconds per process, address space, file size and process count apply;
        ``wall_s`` and ``output_bytes`` do not (the caller ends the program).
    isolation:
        ``"namespace"`` or ``"fallback"``; None: as :class:`Sandbox` decides.
    hide:
        More directories to cover in namespace mode (see :class:`Sandbox`).
    env:
        Variables added to the sandbox's own environment (``TERM`` is set to
        ``xterm-256color`` unless given); never the server's.
    cols, rows:
        The initial window size.

    Returns
    -------
    PtyProcess
        The running program; the caller must :meth:`~PtyProcess.kill` it.

    Raises
    ------
    SandboxUnavailable
        The sandbox could not be set up or did not get ready in time.
    InvalidInput
        A path in ``files`` is absolute or leaves ``cwd``.
    """
    if not argv:
        raise ValueError("argv is empty")
    box = Sandbox(
        dict(files) if files else None,
        limits=limits,
        isolation=isolation,
        workdir=cwd,
        hide=hide,
    )
    try:
        return _start(box, list(argv), env or {}, cols, rows)
    except BaseException:
        box.close()
        raise


def _start(
    box: Sandbox, argv: list[str], extra_env: Mapping[str, str], cols: int, rows: int
) -> PtyProcess:
    environment = box._environment()
    # A terminal wants colours; NO_COLOR is for the captured output of runs.
    environment.pop("NO_COLOR", None)
    environment["TERM"] = "xterm-256color"
    environment.update(extra_env)
    master, slave = os.openpty()
    status_r, status_w = os.pipe()
    try:
        if box.uid is not None:
            # As login(1) does: the terminal belongs to the user of the session, so
            # programs that reopen it (by its /dev/pts name) can.
            os.fchown(slave, box.uid, -1)
        os.set_blocking(master, False)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        proc = subprocess.Popen(
            box._launch_command(argv, status_w, tty=True),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=box.root,
            env=environment,
            start_new_session=True,
            pass_fds=(status_w,),
        )
    except OSError as exc:
        for fd in (master, status_r):
            os.close(fd)
        raise SandboxUnavailable(f"the sandbox could not start: {exc.strerror}") from exc
    finally:
        # Only the program may hold the slave: its last close is how EOF reaches us.
        os.close(slave)
        os.close(status_w)
    process = PtyProcess(box, proc, master, status_r)
    try:
        _await_ready(process, status_r)
    except BaseException:
        process.kill()
        raise
    return process


def _await_ready(process: PtyProcess, status_fd: int) -> None:
    """Wait for the launcher's ``{"ready": true}`` line (or its setup error)."""
    buffer = b""
    deadline = time.monotonic() + _READY_S
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxUnavailable("the sandbox did not get ready in time")
        readable, _, _ = select.select([status_fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(status_fd, 4096)
        if not chunk:
            raise SandboxUnavailable("the sandbox could not be set up")
        buffer += chunk
    first, _, rest = buffer.partition(b"\n")
    process._status = rest
    try:
        message = json.loads(first)
    except ValueError:
        message = {}
    if not isinstance(message, dict) or not message.get("ready"):
        reason = message.get("setup_error", "no answer") if isinstance(message, dict) else ""
        raise SandboxUnavailable(f"the sandbox could not be set up: {reason}")
