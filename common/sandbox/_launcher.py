"""The first program inside the sandbox: it confines itself, then runs the real one.

Started by :mod:`common.sandbox.sandbox` as ``python -I -S _launcher.py CONFIG -- ARGV...``
(under ``unshare`` in namespace mode), so it imports nothing but the standard library
and nothing from the sandbox directory. In order it:

1. in namespace mode, as the namespace's root: hides the writable scratch directories
   and the server's home and project directories behind fresh size-capped tmpfs mounts
   (binding back only the sandbox directory and the interpreter's files), binds the
   ``read_only`` directories onto themselves and remounts them read-only, then mounts
   a /proc of the new PID namespace so no host process (nor its environment) is visible;
2. sets the resource limits;
3. drops root: every capability (the bounding set too), and to the sandbox's own uid
   when one is given;
4. installs a seccomp filter (see :func:`seccomp_filter`), which also sets no_new_privs;
5. forks the program and reaps until it exits, then kills whatever it left behind and
   writes the program's status (``{"exit": n}`` or ``{"signal": n}``) to the status fd.

With ``"tty": true`` (a shell on a pseudo-terminal, :mod:`common.sandbox.pty`) its
standard streams are the terminal: it says ``{"ready": true}`` on the status fd once
confined, and the program gets a session of its own with the terminal as its
controlling terminal (job control, Ctrl-C to the foreground job, SIGWINCH on resize).
Status messages are then one JSON object a line.

It is PID 1 of its namespace there (whose exit makes the kernel kill the rest), or a
child subreaper in fallback mode (so daemonised descendants are re-parented to it
and can be found and killed).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import platform
import resource
import select
import signal
import struct
import sys
import termios
import time
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_RDONLY = 1
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_RELATIME = 1 << 21
MS_REC = 16384

# Syscalls the sandboxed program never needs, per architecture: its own socket()
# (socketpair stays: asyncio and node's child pipes use it), reading or steering other
# processes, io_uring (it can open sockets behind seccomp's back), and making
# namespaces or mounts (which could undo the mounts above).
_DENIED = (
    "socket",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "io_uring_setup",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
)
_GENERIC_NEW = {  # numbered alike on every architecture since Linux 5.1
    "pidfd_getfd": 438,
    "io_uring_setup": 425,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
}
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "socket": 41,
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            **_GENERIC_NEW,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198,
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            **_GENERIC_NEW,
        },
    ),
}
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_RET_K = 0x06


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """The BPF program (packed ``sock_filter`` array), or None on an unknown architecture.

    Every denied call fails with EPERM rather than killing the process, so programs see
    an ordinary error ("Operation not permitted") they can report. Calls made through
    another ABI (i386 ``int 0x80``, x32) are refused wholesale: their numbers differ
    and nothing we run uses them.
    """
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    denied = sorted({numbers[name] for name in _DENIED})
    prog: list[tuple[int, int, int, int]] = []
    # seccomp_data: int nr at offset 0, u32 arch at offset 4.
    prog.append((_BPF_LD_W_ABS, 0, 0, 4))
    # ld arch, jeq arch, ld nr, jge x32, one jeq per call, allow: then deny.
    deny_at = 5 + len(denied)
    prog.append((_BPF_JEQ_K, 0, deny_at - 2, audit_arch))
    prog.append((_BPF_LD_W_ABS, 0, 0, 0))
    checks = [(_BPF_JGE_K, X32_SYSCALL_BIT)] + [(_BPF_JEQ_K, nr) for nr in denied]
    for code, k in checks:
        here = len(prog)
        prog.append((code, deny_at - here - 1, 0, k))
    prog.append((_BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    assert len(prog) == deny_at
    prog.append((_BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM))
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def install_seccomp(libc: ctypes.CDLL, program: bytes) -> None:
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def _mount(libc: ctypes.CDLL, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    _check(
        libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def setup_mounts(
    libc: ctypes.CDLL,
    hides: list[dict[str, Any]],
    keeps: list[str],
    read_only: list[str] | None = None,
) -> None:
    """Cover each of ``hides`` with a tmpfs; bind back the ``keeps`` that lay under it.

    ``unshare --mount`` has made every mount private already, so none of this reaches
    the host. A kept path is reopened through an O_PATH descriptor taken before its
    parent is covered: once covered it has no name left to bind from.
    """
    os.umask(0o022)
    for hide in hides:
        path = hide["path"]
        under = [k for k in keeps if k == path or k.startswith(path.rstrip("/") + "/")]
        fds = [(k, os.open(k, os.O_PATH | os.O_CLOEXEC)) for k in under]
        _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, hide["options"])
        for kept, fd in fds:
            is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
            if is_dir:
                os.makedirs(kept, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(kept), mode=0o755, exist_ok=True)
                with open(kept, "a"):
                    pass
            _mount(libc, f"/proc/self/fd/{fd}", kept, "", MS_BIND | MS_REC, "")
            os.close(fd)
    for path in read_only or []:
        # A bind of the directory onto itself is a mount of its own, which can then be
        # made read-only without touching the host's (or a kept parent's) mount.
        _mount(libc, path, path, "", MS_BIND | MS_REC, "")
        _mount(libc, "", path, "", _locked_flags(path) | MS_BIND | MS_REMOUNT | MS_RDONLY, "")
    _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "")


def _locked_flags(path: str) -> int:
    """The flags a remount must keep: in a user namespace the kernel refuses to drop
    nosuid/nodev/noexec/atime flags inherited from the host's mount."""
    flags = os.statvfs(path).f_flag
    keep = 0
    for st_flag, ms_flag in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if flags & st_flag:
            keep |= ms_flag
    return keep


def drop_bounding_set(libc: ctypes.CDLL) -> None:
    """No program started from here can gain a capability, even as uid 0 (namespace
    root, or root in fallback). Needs CAP_SETPCAP, so before leaving root: unprivileged
    there is nothing to drop, and EPERM ends the loop as EINVAL does past the last cap."""
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1


def drop_capabilities(libc: ctypes.CDLL) -> None:
    """Clear this process's own capabilities (all sets)."""
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("=Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # two (effective, permitted, inheritable) triples of zeros
    _check(libc.capset(header, data), "capset")


def set_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        which = getattr(resource, name)
        # SIGXCPU at the soft limit lets a program report it; SIGKILL follows a second later.
        soft, hard = (value, value + 1) if name == "RLIMIT_CPU" else (value, value)
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:  # unprivileged, a hard limit only goes down
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))


def _children(me: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name can hold spaces and parentheses: fields follow the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(entry))
    return found


def kill_descendants(deadline_s: float = 3.0) -> None:
    """Kill and reap every descendant: as subreaper, orphans come back to us as children."""
    me = os.getpid()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        kids = _children(me)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reaped = False
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if not kids:
                    return
                break
            if pid == 0:
                break
            reaped = True
        if not kids and not reaped:
            time.sleep(0.01)


def _status_of(raw: int) -> dict[str, Any]:
    if os.WIFSIGNALED(raw):
        return {"signal": os.WTERMSIG(raw)}
    return {"exit": os.waitstatus_to_exitcode(raw)}


def _watch_children() -> int:
    """Make SIGCHLD wake a poll: returns the fd that becomes readable on it."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    return wake_r


def _reap_while_server_lives(child: int, status_fd: int, wake_fd: int) -> dict[str, Any]:
    """Reap until the program exits, or until the server is gone.

    A shell has no wall timeout, so nothing else would end it if the server died
    (killed, crashed): in namespace mode ``unshare`` would keep it alive. The server
    holds the read end of the status pipe; when it is gone, the write end we hold
    polls POLLERR, and everything is killed as on a timeout.
    """
    poller = select.poll()
    poller.register(status_fd, 0)  # POLLERR/POLLHUP are always reported
    poller.register(wake_fd, select.POLLIN)
    while True:
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return {"exit": 0}
            if pid == 0:
                break
            if pid == child:
                return _status_of(raw)
        for fd, events in poller.poll():
            if fd == status_fd and events & (select.POLLERR | select.POLLHUP):
                return {"signal": signal.SIGHUP}
            if fd == wake_fd:
                try:
                    while os.read(wake_fd, 512):
                        pass
                except BlockingIOError:
                    pass


def _report(status_fd: int, status: dict[str, Any]) -> None:
    try:
        # One object a line: a tty run says "ready" before its final status.
        os.write(status_fd, json.dumps(status).encode() + b"\n")
    except OSError:
        pass


def main(args: list[str]) -> int:
    config: dict[str, Any] = json.loads(args[0])
    argv = args[2:]
    status_fd: int = config["status_fd"]
    os.set_inheritable(status_fd, False)
    libc = _libc()
    try:
        if config["mounts"]:
            setup_mounts(libc, config["hides"], config["keeps"], config.get("read_only", []))
        set_limits(config["rlimits"])
        drop_bounding_set(libc)
        uid = config["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        drop_capabilities(libc)
        os.chdir(config["cwd"])
        init = os.getpid() == 1
        if not init:
            _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
        if config["seccomp"]:
            program = seccomp_filter()
            if program is None:
                raise OSError(f"no seccomp filter for {platform.machine()}")
            install_seccomp(libc, program)
    except OSError as exc:
        sys.stderr.write(f"sandbox: setup failed: {exc}\n")
        _report(status_fd, {"setup_error": str(exc)})
        return 125

    # The server asks us (fallback mode) to end the run: everything goes, then we do.
    def stop(signum: int, frame: object) -> None:
        kill_descendants()
        _report(status_fd, {"signal": signal.SIGKILL})
        os._exit(128 + signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    tty = bool(config.get("tty"))
    wake = _watch_children() if tty else None
    if tty:
        # The server waits for this before it hands the terminal to a client, so a
        # setup failure is an error at connect time, not a shell that never answers.
        _report(status_fd, {"ready": True})
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if tty:
            # A session of its own whose controlling terminal is the pty: the shell's
            # job control works and Ctrl-C reaches its foreground job, not us.
            try:
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            except OSError as exc:
                sys.stderr.write(f"sandbox: no controlling terminal: {exc.strerror}\n")
        # CPython ignores these; the program gets the defaults a shell would give it.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"sandbox: cannot run {argv[0]!r}: {exc.strerror}\n")
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    status: dict[str, Any] = {}
    if wake is not None:
        status = _reap_while_server_lives(child, status_fd, wake)
    while not status:
        try:
            pid, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            status = _status_of(raw)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kill_descendants()
    _report(status_fd, status)
    return int(status.get("exit", 128 + status.get("signal", 0)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
