"""A fresh directory to run untrusted programs in, and the process that runs them.

See the package docstring (:mod:`common.sandbox`) for what the isolation covers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from common.errors import AppError, InvalidInput

logger = logging.getLogger(__name__)

ISOLATION_ENV = "SANDBOX_NETWORK"
SECCOMP_ENV = "SANDBOX_SECCOMP"
NAMESPACE = "namespace"
FALLBACK = "fallback"

_LAUNCHER = str(Path(__file__).with_name("_launcher.py"))
# Sandbox uids when the server runs as root: one per sandbox, so the process limit
# (counted per uid) is this sandbox's alone and two sandboxes cannot signal each other.
# Above systemd's container range, below 2**31 (some tools read uids as signed).
_UID_BASE = 2_000_000_000
_uid_counter = itertools.count()
# Directories the program could otherwise leave files in, or read the server's from.
_SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_SYSTEM_DIRS = frozenset(
    ["/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/var", "/opt", "/srv"]
    + ["/proc", "/sys", "/dev", "/run", "/boot", "/home", "/mnt", "/media", "/tmp"]
)
# One read is at most this; the cap on what is kept is Limits.output_bytes.
_CHUNK = 65536
# After the program ends: how long its pipes may stay open (a grandchild holding them).
_DRAIN_S = 0.5
# A report bigger than this was not written by the runner alone.
_REPORT_CAP = 8 * 1024 * 1024


class SandboxUnavailable(AppError):
    """The sandbox cannot run here as configured (e.g. namespaces forced but refused)."""

    status = 503
    code = "sandbox_unavailable"


@dataclass(frozen=True)
class Limits:
    """Per-run limits. ``memory_mb`` is address space (RLIMIT_AS), not resident memory;
    ``processes`` counts threads too (RLIMIT_NPROC); ``output_bytes`` is per stream."""

    cpu_s: int = 20
    memory_mb: int = 1024
    file_size_mb: int = 32
    processes: int = 64
    wall_s: float = 60
    output_bytes: int = 64_000


@dataclass
class RunResult:
    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_ms: int
    output_truncated: bool
    isolation: str  # "namespace" | "fallback"
    signal: int | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "ok": self.ok,
            "timed_out": self.timed_out,
            "duration_ms": self.duration_ms,
            "output_truncated": self.output_truncated,
            "isolation": self.isolation,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


class Sandbox:
    """A fresh temporary directory; programs run in it under limits and isolation.

    A context manager: on exit every process started in it is killed and the
    directory is removed.

    Parameters
    ----------
    files:
        Relative path -> text, written before anything runs.
    limits:
        The limits of each :meth:`run`.
    isolation:
        ``"namespace"`` or ``"fallback"``; None: ``$SANDBOX_NETWORK``, else namespaces
        when this machine allows them (probed once per process).
    workdir:
        A directory to use as :attr:`root` instead of a fresh one (created if
        missing): the sandbox owns it from now on and removes it on close. Its
        parents stay hidden in namespace mode only when they are the server's home
        or project directory, or listed in ``hide``.
    hide:
        More directories to cover in namespace mode (the server's data directory when
        ``workdir`` lies in it: other sessions' workspaces, the embedded stores' files).
    read_only:
        Directories the program may read but not change (a project's installed
        dependencies): in namespace mode bound read-only at the same path, even under a
        hidden directory; in fallback mode merely readable (see the package docstring).
    python_path:
        Entries put on PYTHONPATH before the runners' own (pytest), so a project's
        pinned dependencies win over the server's.

    Raises
    ------
    SandboxUnavailable
        Namespaces were asked for and this machine refuses them.
    InvalidInput
        A path in ``files`` is absolute or leaves the directory.
    """

    def __init__(
        self,
        files: dict[str, str] | None = None,
        *,
        limits: Limits = Limits(),
        isolation: str | None = None,
        workdir: Path | None = None,
        hide: Sequence[Path] = (),
        read_only: Sequence[Path] = (),
        python_path: Sequence[str] = (),
    ) -> None:
        self._setup(limits, resolve_isolation(isolation), _seccomp_wanted(), workdir, hide)
        # After _setup, which gives every sandbox (PTY ones too) the empty defaults.
        self._read_only[:] = [os.path.realpath(p) for p in read_only]
        self._python_path[:] = [str(p) for p in python_path]
        if files:
            try:
                self.write(files)
            except BaseException:
                self.close()
                raise

    def _setup(
        self,
        limits: Limits,
        isolation: str,
        seccomp: bool,
        workdir: Path | None = None,
        hide: Sequence[Path] = (),
    ) -> None:
        self.limits = limits
        self.isolation = isolation
        self.seccomp = seccomp
        namespace = isolation == NAMESPACE
        root_server = os.geteuid() == 0
        if workdir is not None:
            Path(workdir).mkdir(mode=0o700, parents=True, exist_ok=True)
            workdir = Path(workdir).resolve()
        self._workdir = workdir
        self._extra_hides = [os.path.realpath(h) for h in hide]
        self._read_only: list[str] = []
        self._python_path: list[str] = []
        # As root, run as a uid of our own: RLIMIT_NPROC does not bind root. Without
        # mounts to expose the interpreter, only when others can reach it at all.
        self.uid: int | None = None
        reach = _interpreter_paths() + ([str(workdir.parent)] if workdir else [])
        if root_server and (namespace or _reachable_by_others(reach)):
            self.uid = _UID_BASE + (os.getpid() % 100_000) * 1000 + next(_uid_counter) % 1000
        self._probing = False
        self._base = Path(tempfile.mkdtemp(prefix="ao-sandbox-")).resolve()
        self._closed = False
        # A sandbox dropped without close() still goes when collected.
        self._finalizer = weakref.finalize(self, _discard, self._base, self.uid, workdir)
        # base/ stays root's (read-only to the program): lib/ holds the network guards
        # that the program must not swap out.
        os.chmod(self._base, 0o755)
        self.root = workdir or self._base / "work"
        self.home = self._base / "home"
        self.tmp = self._base / "tmp"
        self._lib = self._base / "lib"
        # Where runners have reports written (JUnit XML, coverage JSON): outside root,
        # so the code under test does not see them among its files.
        self.reports = self._base / "reports"
        if workdir is not None:
            os.chmod(workdir, 0o700)
            self._own_tree(workdir)
        for own in (self.root, self.home, self.tmp, self.reports):
            if own != workdir:
                own.mkdir(mode=0o700)
            self._own(own)
        self._lib.mkdir(mode=0o755)
        if not seccomp:
            _write_guards(self._lib)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what is left of the runs and remove the directory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    # -- files -----------------------------------------------------------------------

    def write(self, files: dict[str, str]) -> None:
        """Write ``files`` (relative path -> text) under :attr:`root`.

        Raises
        ------
        InvalidInput
            A path is absolute, empty, or leaves the directory (``..``, a symlink).
        """
        for rel, content in files.items():
            target = self._inside(rel)
            self._make_parents(target)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(target, flags, 0o644)
            except OSError as exc:
                raise InvalidInput(f"cannot write {rel!r}: {exc.strerror}") from exc
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
            self._own(target)

    def read(self, path: str) -> str | None:
        """The text of ``path`` under :attr:`root`, or None when it is not a file there."""
        try:
            target = self._inside(path)
        except InvalidInput:
            return None
        return _read_regular(target, None)

    def read_report(self, name: str) -> str | None:
        """The text of report ``name`` in :attr:`reports` (None if absent or too big)."""
        return _read_regular(self.reports / name, _REPORT_CAP)

    def add_helper(self, name: str, text: str) -> Path:
        """Write a read-only helper file (a reporter, a config) outside :attr:`root`."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad helper name {name!r}")
        path = self._lib / name
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o644)
        return path

    def _inside(self, rel: str) -> Path:
        pure = PurePosixPath(rel)
        if not rel or pure.is_absolute() or ".." in pure.parts or "\x00" in rel:
            raise InvalidInput(f"path {rel!r} must be relative and stay inside the sandbox")
        target = self.root / pure
        # A program may have left a symlink here pointing anywhere: resolve and recheck.
        if not target.parent.resolve().is_relative_to(self.root):
            raise InvalidInput(f"path {rel!r} leaves the sandbox")
        return target

    def _make_parents(self, target: Path) -> None:
        missing = []
        parent = target.parent
        while parent != self.root and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            directory.mkdir()
            self._own(directory)

    def _own(self, path: Path) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def _own_tree(self, top: Path) -> None:
        """Hand a whole given workdir (files written before the sandbox, maybe by an
        earlier sandbox's uid) to the uid the program runs as."""
        uid = self.uid if self.uid is not None else os.geteuid()
        if os.geteuid() != 0:
            return  # only root can give files away; ours are ours already
        for dirpath, dirnames, filenames in os.walk(top):
            os.chown(dirpath, uid, uid, follow_symlinks=False)
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)

    # -- running ---------------------------------------------------------------------

    def run(
        self, argv: list[str], *, timeout_s: float | None = None, stdin: str | None = None
    ) -> RunResult:
        """Run ``argv`` in :attr:`root` and wait for it (at most the wall limit).

        Parameters
        ----------
        argv:
            The program and its arguments; found on the sandbox's PATH (the server's
            interpreter directory, /usr/local/bin, /usr/bin, /bin).
        timeout_s:
            Wall time for this run instead of ``limits.wall_s``.
        stdin:
            Text for the program's standard input (else it reads nothing).

        Returns
        -------
        RunResult
            Exit code or signal, capped output, and whether the wall timeout hit.

        Raises
        ------
        SandboxUnavailable
            The sandbox itself could not be set up (not the program's failure).
        """
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        if not argv:
            raise ValueError("argv is empty")
        wall = self.limits.wall_s if timeout_s is None else timeout_s
        return _Run(self, list(argv), wall, stdin).execute()

    def _launch_command(self, argv: list[str], status_fd: int, *, tty: bool = False) -> list[str]:
        namespace = self.isolation == NAMESPACE
        kept = [str(self._workdir)] if self._workdir is not None else []
        # Read-only directories must be reachable too (bound back when under a hidden
        # directory, their parents traversable by the sandbox uid).
        kept += self._read_only
        config = {
            "status_fd": status_fd,
            "mounts": namespace,
            "hides": (
                _hides(self.limits, self.uid is not None, self._extra_hides, kept)
                if namespace
                else []
            ),
            "keeps": _keeps(self._base, kept) if namespace else [],
            "read_only": self._read_only if namespace else [],
            "rlimits": self._rlimits(),
            "uid": self.uid,
            "cwd": str(self.root),
            "seccomp": self.seccomp,
            "tty": tty,
        }
        launcher = [sys.executable, "-I", "-S", _LAUNCHER, json.dumps(config), "--", *argv]
        return (_unshare_prefix() if namespace else []) + launcher

    def _rlimits(self) -> dict[str, int]:
        mb = 1024 * 1024
        processes = self.limits.processes + 1  # the launcher counts too
        if self.uid is None and self.isolation != NAMESPACE:
            # Same uid as the server and no user namespace: the count is the uid's
            # whole, so allow what it already runs plus our share.
            processes += _processes_of(os.getuid())
        return {
            "RLIMIT_CPU": self.limits.cpu_s,
            "RLIMIT_AS": self.limits.memory_mb * mb,
            "RLIMIT_FSIZE": self.limits.file_size_mb * mb,
            "RLIMIT_NPROC": processes,
            "RLIMIT_CORE": 0,
        }

    def _environment(self) -> dict[str, str]:
        # Built from nothing: the server's environment (keys, URLs) never reaches here.
        path = [str(Path(sys.executable).parent)]
        node = shutil.which("node")
        if node:
            path.append(str(Path(node).parent))
        path += ["/usr/local/bin", "/usr/bin", "/bin"]
        env = {
            "PATH": os.pathsep.join(dict.fromkeys(path)),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "NO_COLOR": "1",
        }
        python_path = [*self._python_path, *_runner_paths()]
        if not self.seccomp:
            python_path.insert(0, str(self._lib))
            env["NODE_OPTIONS"] = f"--require={self._lib / 'no_network.cjs'}"
        if python_path:
            env["PYTHONPATH"] = os.pathsep.join(python_path)
        return env


class _Capped:
    """Keeps the head and the tail of a stream, at most ``cap`` bytes in all."""

    def __init__(self, cap: int) -> None:
        self.tail_cap = cap // 4
        self.head_cap = cap - self.tail_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            del self.tail[: max(0, len(self.tail) - self.tail_cap)]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        cut = self.total - len(self.head) - len(self.tail)
        return f"{head}\n[... {cut} bytes cut ...]\n{tail}"


class _Run:
    """One run: spawn, pump the pipes under the deadline, stop, collect the status."""

    def __init__(self, box: Sandbox, argv: list[str], wall: float, stdin: str | None) -> None:
        self.box, self.argv, self.wall = box, argv, wall
        self.stdin = stdin.encode() if stdin is not None else None
        self.out = _Capped(box.limits.output_bytes)
        self.err = _Capped(box.limits.output_bytes)

    def execute(self) -> RunResult:
        box = self.box
        if box.isolation == FALLBACK and box.uid is None and not box._probing:
            _protect_server_process()
            if os.geteuid() == 0:
                _warn_root_fallback()
        status_r, status_w = os.pipe()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                box._launch_command(self.argv, status_w),
                stdin=subprocess.PIPE if self.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=box.root,
                env=box._environment(),
                start_new_session=True,
                pass_fds=(status_w,),
            )
        except OSError as exc:
            os.close(status_r)
            raise SandboxUnavailable(f"the sandbox could not start: {exc.strerror}") from exc
        finally:
            os.close(status_w)
        try:
            timed_out = self._pump(proc, started + self.wall)
            if timed_out:
                self._stop(proc)
            self._finish(proc)
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        duration_ms = int((time.monotonic() - started) * 1000)
        status = _read_status(status_r)
        if "setup_error" in status:
            raise SandboxUnavailable(f"the sandbox could not be set up: {status['setup_error']}")
        exit_code: int | None = status.get("exit")
        signum: int | None = status.get("signal")
        if not status and proc.returncode is not None:
            # The launcher itself was killed (the timeout) before it could tell.
            if proc.returncode < 0:
                signum = -proc.returncode
            elif not timed_out:
                exit_code = proc.returncode
        if timed_out:
            exit_code, signum = None, signum or signal.SIGKILL
        return RunResult(
            argv=self.argv,
            exit_code=exit_code,
            stdout=self.out.text(),
            stderr=self.err.text(),
            timed_out=timed_out,
            duration_ms=duration_ms,
            output_truncated=self.out.truncated or self.err.truncated,
            isolation=box.isolation,
            signal=signum,
        )

    def _pump(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        """Move stdin/stdout/stderr until the program is done; True when the deadline hit."""
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, self.out)
        sel.register(proc.stderr, selectors.EVENT_READ, self.err)
        pending = memoryview(self.stdin) if self.stdin is not None else None
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE, None)
        exit_fd = _pidfd(proc.pid)
        if exit_fd is not None:
            sel.register(exit_fd, selectors.EVENT_READ, "exit")
        exited_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and _has_exited(proc.pid):
                    exited_at = now
                readers = [k for k in sel.get_map().values() if isinstance(k.data, _Capped)]
                if exited_at is not None and (not readers or now - exited_at > _DRAIN_S):
                    return False
                if now >= deadline:
                    return True
                wait = min(deadline - now, 0.05 if exit_fd is None else 1.0)
                if exited_at is not None:
                    wait = min(wait, exited_at + _DRAIN_S - now)
                for key, _ in sel.select(wait):
                    if key.data == "exit":
                        sel.unregister(key.fileobj)
                    elif key.data is None:
                        pending = self._feed(sel, proc, pending)
                    else:
                        data = os.read(key.fd, _CHUNK)
                        if data:
                            key.data.add(data)
                        else:
                            sel.unregister(key.fileobj)
        finally:
            sel.close()
            if exit_fd is not None:
                os.close(exit_fd)

    def _feed(
        self,
        sel: selectors.BaseSelector,
        proc: subprocess.Popen[bytes],
        pending: memoryview | None,
    ) -> memoryview | None:
        assert proc.stdin is not None
        try:
            written = os.write(proc.stdin.fileno(), pending[:_CHUNK]) if pending else 0
        except BrokenPipeError:
            written, pending = 0, None
        except BlockingIOError:
            return pending
        pending = pending[written:] if pending is not None else None
        if not pending:
            sel.unregister(proc.stdin)
            proc.stdin.close()
        return pending

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        _stop_tree(proc.pid, ask_launcher=self.box.isolation == FALLBACK)

    def _finish(self, proc: subprocess.Popen[bytes]) -> None:
        # The leader is still unreaped here, so its process group id cannot have been
        # reused: killing the group cannot hit a stranger.
        end = time.monotonic() + 5.0
        while not _has_exited(proc.pid) and time.monotonic() < end:
            time.sleep(0.01)
        _kill_group(proc.pid)
        if self.box.uid is not None:
            # In namespace mode the kernel kills what PID 1 left when it dies, but not
            # at once: wait until the uid runs nothing, so a run returns only when
            # everything it started is gone (not merely doomed).
            _kill_uid(self.box.uid)
        proc.wait()
        # Output written just before the end, still in the pipes.
        for stream, sink in ((proc.stdout, self.out), (proc.stderr, self.err)):
            if stream is None or stream.closed:
                continue
            os.set_blocking(stream.fileno(), False)
            with contextlib.suppress(OSError):
                while data := os.read(stream.fileno(), _CHUNK):
                    sink.add(data)


def _stop_tree(pid: int, *, ask_launcher: bool) -> None:
    """End every process of the sandboxed program whose launcher is ``pid``.

    ``ask_launcher`` (fallback mode): the launcher is the subreaper, so it is asked
    first to kill the whole tree, including what left our process group, and given up
    to a second before the group kill removes it. In namespace mode the group kill
    ends unshare and the namespace's PID 1, whose death makes the kernel kill every
    other process in the namespace.
    """
    if ask_launcher:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 1.0
        while time.monotonic() < end and not _has_exited(pid):
            time.sleep(0.01)
    _kill_group(pid)


def _read_regular(path: Path, cap: int | None) -> str | None:
    """A regular file's text; never through a symlink, never blocking on a FIFO the
    program may have put in its place."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or (cap is not None and info.st_size > cap):
            return None
        return fh.read().decode("utf-8", errors="replace")


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(pid: int) -> bool:
    """True once ``pid`` (our child) has exited; it is left unreaped (WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_status(fd: int) -> dict[str, Any]:
    chunks = []
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    os.close(fd)
    try:
        status = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def _proc_entries() -> list[str]:
    return [e for e in os.listdir("/proc") if e.isdigit()]


def _real_uid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _processes_of(uid: int) -> int:
    """How many tasks (threads too, as RLIMIT_NPROC counts them) ``uid`` runs now."""
    count = 0
    for pid in _proc_entries():
        if _real_uid(pid) == uid:
            try:
                count += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                count += 1
    return count


def _kill_uid(uid: int) -> None:
    """Kill every process of a sandbox uid (nothing else ever runs as it), waiting up to
    2 s for them to go."""
    for _ in range(200):
        pids = [int(p) for p in _proc_entries() if _real_uid(p) == uid]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _discard(base: Path, uid: int | None, workdir: Path | None = None) -> None:
    if uid is not None:
        _kill_uid(uid)
    remove_tree(base)
    if workdir is not None:
        remove_tree(workdir)


def remove_tree(path: Path) -> None:
    """Remove a directory a sandboxed program wrote into (it may have left
    directories without permissions); a missing one is fine."""

    def retry(func: Any, failed: str, exc: Any) -> None:
        # A program may have left a directory without permissions: restore and retry.
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
            func(failed)

    if path.exists():
        shutil.rmtree(path, onerror=retry)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


# -- isolation ---------------------------------------------------------------------


def resolve_isolation(requested: str | None = None) -> str:
    """``"namespace"`` or ``"fallback"``: the argument, else ``$SANDBOX_NETWORK``, else probed.

    Raises
    ------
    SandboxUnavailable
        ``"namespace"`` was asked for and this machine refuses namespaces.
    """
    choice = (requested or os.environ.get(ISOLATION_ENV) or "").strip().lower()
    if choice not in ("", NAMESPACE, FALLBACK):
        raise ValueError(f"{ISOLATION_ENV} must be {NAMESPACE!r} or {FALLBACK!r}")
    if choice == FALLBACK:
        return FALLBACK
    available = namespaces_available()
    if choice == NAMESPACE and not available:
        raise SandboxUnavailable(
            "namespace isolation was asked for but this machine does not allow it"
        )
    return NAMESPACE if available else FALLBACK


@cache
def namespaces_available() -> bool:
    """Can this process run the sandbox in new namespaces? Probed once, by doing it."""
    if shutil.which("unshare") is None:
        return False
    return _probe(NAMESPACE)


@cache
def seccomp_available() -> bool:
    """Can the sandbox install its seccomp filter here? Probed once, by doing it."""
    from common.sandbox._launcher import seccomp_filter

    if seccomp_filter() is None:
        return False
    return _probe(FALLBACK, seccomp=True)


def _seccomp_wanted() -> bool:
    setting = os.environ.get(SECCOMP_ENV, "").strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False
    return seccomp_available()


def _probe(isolation: str, *, seccomp: bool = False) -> bool:
    # Through _setup, not __init__: __init__ would ask for this very probe.
    box = Sandbox.__new__(Sandbox)
    box._setup(Limits(wall_s=10), isolation, seccomp)
    box._probing = True
    try:
        with box:
            return box.run([sys.executable, "-S", "-c", "pass"]).ok
    except SandboxUnavailable:
        return False


def _unshare_prefix() -> list[str]:
    prefix = ["unshare", "--net", "--pid", "--mount", "--ipc", "--uts", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        # Unprivileged: a user namespace first, in which we are root for the setup.
        prefix[1:1] = ["--user", "--map-root-user"]
    return prefix


def _interpreter_paths() -> list[str]:
    """What the sandboxed interpreter must be able to read: prefixes and their paths."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = set(prefixes) | {os.path.dirname(os.path.realpath(sys.executable))}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and any(_under(entry, p) for p in prefixes):
            paths.add(entry)
    paths.update(_runner_paths())
    for tool in ("node",):
        found = shutil.which(tool)
        if found:
            paths.add(os.path.dirname(os.path.realpath(found)))
    return sorted(paths | {os.path.realpath(p) for p in paths})


@cache
def _runner_paths() -> tuple[str, ...]:
    """Where pytest and coverage were imported from, when outside the interpreter's own
    directories (Lambda layers under /opt/python): the sandbox needs them on PYTHONPATH."""
    prefixes = {sys.prefix, sys.base_prefix}
    found: list[str] = []
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "coverage"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin:
            continue
        top = Path(spec.origin).parent
        directory = str(top.parent if spec.submodule_search_locations is not None else top)
        if not any(_under(directory, p) for p in prefixes) and directory not in found:
            found.append(directory)
    return tuple(found)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _reachable_by_others(paths: list[str]) -> bool:
    for path in paths:
        current = "/"
        for part in Path(os.path.realpath(path)).parts[1:]:
            try:
                mode = os.stat(current).st_mode
            except OSError:
                return False
            if not mode & stat.S_IXOTH:
                return False
            current = os.path.join(current, part)
    return True


def _keeps(base: Path, extra: Sequence[str] = ()) -> list[str]:
    """Paths that must stay visible when their parent is covered: minimal, outer first."""
    found = {p for p in _interpreter_paths() if os.path.exists(p)} | {str(base), *extra}
    wanted = sorted(found, key=len)
    kept: list[str] = []
    for path in wanted:
        if not any(_under(path, k) for k in kept):
            kept.append(path)
    return kept


def _hides(
    limits: Limits,
    drop_uid: bool,
    extra: Sequence[str] = (),
    extra_keeps: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Directories to cover with an empty tmpfs in the sandbox's mount namespace.

    Scratch space (/tmp, /var/tmp, /dev/shm) so nothing is left there; the server's
    home and project directories (keys, .env, store data) and ``extra``; and, when the
    program runs as another uid, the directories it could not traverse on the way to
    the interpreter (or to ``extra_keeps``, a workdir).
    """
    scratch_mb = max(16, 2 * limits.file_size_mb)
    scratch = f"mode=1777,size={scratch_mb}m,nr_inodes=16384"
    closed = "mode=0755,size=1m,nr_inodes=1024"
    candidates: dict[str, str] = {d: scratch for d in _SCRATCH_DIRS if os.path.isdir(d)}
    keeps = _interpreter_paths()
    project = str(Path(__file__).resolve().parents[2])
    for private in (os.path.expanduser("~"), project, *extra):
        real = os.path.realpath(private)
        # Never cover a system directory, nor one the interpreter itself lives in.
        if real in _SYSTEM_DIRS or not os.path.isdir(real) or any(_under(real, k) for k in keeps):
            continue
        candidates.setdefault(real, closed)
    if drop_uid:
        for path in [*keeps, *extra_keeps]:
            current = "/"
            for part in Path(path).parts[1:]:
                nxt = os.path.join(current, part)
                if not os.stat(current).st_mode & stat.S_IXOTH:
                    candidates.setdefault(current, closed)
                    break
                current = nxt
    ordered = sorted(candidates, key=len)
    hides: list[dict[str, Any]] = []
    for path in ordered:
        if any(_under(path, h["path"]) for h in hides):
            continue
        hides.append({"path": path, "options": candidates[path]})
    return hides


@cache
def _warn_root_fallback() -> None:
    logger.warning(
        "sandbox: no namespaces here and the interpreter is not readable by other users, "
        "so sandboxed programs run as root (without capabilities) and without a process "
        "limit; allow unshare or install Python where other users can read it"
    )


@cache
def _protect_server_process() -> None:
    """Fallback without a uid of its own: the program runs as the server's user, who
    may read /proc/<pid>/environ and attach to processes of the same uid. A
    non-dumpable server refuses both (side effect: no core dumps, no debugger attach).
    """
    import ctypes

    pr_set_dumpable = 4
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


_GUARD_PY = '''\
"""Sandbox network guard (fallback without seccomp): no socket connects or binds."""
import errno as _errno
import socket as _socket


def _refuse(*args, **kwargs):
    raise PermissionError(_errno.EACCES, "network access is disabled in the sandbox")


for _name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
    setattr(_socket.socket, _name, _refuse)
'''

_GUARD_JS = """\
'use strict';
// Sandbox network guard (fallback without seccomp): no connects, listens or UDP.
const refuse = function () {
  const err = new Error('network access is disabled in the sandbox');
  err.code = 'EACCES';
  throw err;
};
const net = require('net');
net.Socket.prototype.connect = refuse;
net.Server.prototype.listen = refuse;
const dgram = require('dgram');
dgram.Socket.prototype.bind = refuse;
dgram.Socket.prototype.send = refuse;
dgram.Socket.prototype.connect = refuse;
"""


def _write_guards(lib: Path) -> None:
    (lib / "sitecustomize.py").write_text(_GUARD_PY, encoding="utf-8")
    (lib / "no_network.cjs").write_text(_GUARD_JS, encoding="utf-8")
    for name in ("sitecustomize.py", "no_network.cjs"):
        os.chmod(lib / name, 0o644)
