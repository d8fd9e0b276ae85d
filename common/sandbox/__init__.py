"""The sandbox: run generated code, its tests and linters where they cannot hurt us.

Each :class:`Sandbox` is a fresh temporary directory (``<tmp>/ao-sandbox-*/work``,
with its own ``home`` and ``tmp`` beside it); on exit every process started in it is
killed and the directory removed. Each :meth:`Sandbox.run` goes through a small
launcher (``_launcher.py``) that confines itself and then starts the program. Runs
block: call them from a worker thread in async code.

Always, in both isolation modes
-------------------------------
- Resource limits (``resource``): CPU seconds (SIGXCPU, then SIGKILL a second later),
  address space (``memory_mb``: allocations fail with MemoryError/ENOMEM), size of
  any one file written (``file_size_mb``: EFBIG or SIGXFSZ), processes (``processes``,
  threads included), no core dumps.
- A wall timeout (``wall_s``): the whole process tree is killed, not just the child.
- An environment built from nothing: PATH, HOME, TMPDIR, LANG and a few PYTHON*
  switches pointing inside the sandbox; ``python_path`` entries (a project's
  site-packages) come first on PYTHONPATH, before the runners' own paths. The
  server's variables (keys, store URLs) are never copied; inherited file
  descriptors are closed.
- Output capped while it is read: at most ``output_bytes`` per stream are kept (the
  head and the tail, with a marker for what was cut); the rest is drained and dropped.
- No capabilities: the bounding set is emptied and no_new_privs is set, so no setuid
  program or file capability gives any back.
- A seccomp filter, where the kernel has seccomp and the CPU is x86_64 or aarch64
  (probed once): ``socket()`` fails for every address family (so no TCP/UDP, to
  127.0.0.1 or anywhere, and no Unix socket to the server's PostgreSQL or Redis);
  ``socketpair()`` still works for asyncio and node's child pipes. Also refused:
  ptrace and process_vm_*, pidfd_getfd, io_uring, unshare/setns, mount and the new
  mount API; any call through another ABI (i386, x32). Code under test that opens a
  socket (a test that starts a local server) therefore fails with EPERM.
- As root, the program runs as a uid of its own (2,000,000,000 and up, one per
  sandbox), so RLIMIT_NPROC binds it and its files and signals stay its own.

``"namespace"`` (the default where ``unshare`` works; detected once per process)
-----------------------------------------------------------------------------------
``unshare --net --pid --mount --ipc --uts --fork --kill-child`` (plus ``--user
--map-root-user`` when the server is not root), then in the new mount namespace:
fresh size-capped tmpfs over /tmp, /var/tmp and /dev/shm (the sandbox directory bound
back), over the server's home and project directories (its .env, keys, store data;
only the interpreter's files bound back), and over any directory on the way to the
interpreter that the sandbox uid could not enter; and a /proc showing only the
sandbox's processes. So: no network device but a downed loopback, even without
seccomp; nothing written outside the sandbox directory survives the run; no host
process (nor its /proc/<pid>/environ) is visible; the launcher is PID 1 and when it
exits the kernel kills everything left.
Directories given as ``read_only`` (a project's installed dependencies, which may lie
in the hidden data directory) are bound back at the same path and remounted read-only
(MS_BIND|MS_REMOUNT|MS_RDONLY): writes fail with EROFS, even as the namespace's root.
Not covered: world-readable files elsewhere on the host can be read; disk use in
the sandbox directory is capped per file, not in total; ``cpu_s`` is per process,
so a tree of busy processes is bounded by the wall timeout instead.

``"fallback"`` (no namespaces: AWS Lambda, unprivileged containers)
-------------------------------------------------------------------
The same limits, environment and seccomp filter; no new namespaces. The launcher is
a child subreaper, so descendants that daemonise (setsid, double fork) come back to it
and are killed when the program ends or times out. When the sandboxed program runs as
the server's own uid, the server makes itself non-dumpable once (first fallback run),
so the program can neither read /proc/<server>/environ nor attach to it (side effect:
no core dumps of the server, and debuggers need privileges to attach).
Not covered: the program sees the host's processes and can signal those of its uid
(on Lambda: the server itself); it can write into /tmp and other writable places
outside the sandbox directory, which are not cleaned up; the process limit is the
uid's current count plus ``processes``, so approximate; ``read_only`` directories
are merely readable where they are (no mount makes them read-only: a program running
as their owner could change them); if it kills the launcher
first, daemonised descendants survive a timeout. Without seccomp (unknown CPU,
kernel without it, or ``SANDBOX_SECCOMP=off``) the network is blocked only by
guards: a ``sitecustomize`` on PYTHONPATH that makes ``socket.socket`` refuse to
connect, bind or send, and a ``node --require`` preload (through NODE_OPTIONS) that
makes ``net``/``dgram`` refuse. Both are trivially bypassed by a determined program
(``_socket``, ``ctypes``, ``process.binding``, another binary such as ``curl``).
As root when the interpreter is not readable by other users (a Python under
/root), the program runs as root without capabilities and without a process limit
(logged once as a warning).

Long-lived programs on a terminal
---------------------------------
:func:`spawn_pty` starts a program (the IDE terminal's shell) through the same launcher,
in either mode, with a pseudo-terminal as its standard streams and controlling
terminal: the same limits (CPU seconds per process, address space, file size,
processes), seccomp filter, capabilities, uid and clean environment (plus ``TERM``),
but no wall timeout and no output cap: the caller ends it
(:meth:`PtyProcess.kill` kills the whole tree, the shell's background jobs in their
own process groups included, and removes its directory). Its working directory may
be a given one (``cwd``, bound back into the namespace when its parents are hidden;
``hide`` covers more, such as the data directory holding other workspaces). If the
server dies without killing it, the launcher notices (the status pipe's reader is
gone) and kills everything it started, in both modes.

Which mode ran is in every result (``RunResult.isolation``, ``TestReport.isolation``).
Override with ``isolation="namespace"|"fallback"`` or ``SANDBOX_NETWORK``; forcing
``namespace`` where it is refused raises :class:`SandboxUnavailable`.
"""

from common.sandbox.pty import PtyProcess, spawn_pty
from common.sandbox.runners import (
    TestCase,
    TestReport,
    check_js_syntax,
    check_syntax,
    node_available,
    run_node_tests,
    run_python_tests,
    run_ruff,
)
from common.sandbox.sandbox import (
    Limits,
    RunResult,
    Sandbox,
    SandboxUnavailable,
    namespaces_available,
    remove_tree,
    resolve_isolation,
    seccomp_available,
)

__all__ = [
    "Limits",
    "PtyProcess",
    "RunResult",
    "Sandbox",
    "SandboxUnavailable",
    "TestCase",
    "TestReport",
    "check_js_syntax",
    "check_syntax",
    "namespaces_available",
    "node_available",
    "remove_tree",
    "resolve_isolation",
    "run_node_tests",
    "run_python_tests",
    "run_ruff",
    "seccomp_available",
    "spawn_pty",
]
