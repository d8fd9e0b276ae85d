"""``python -m common.worker [--concurrency N]``: run jobs from the local queue.

The local server already runs one worker in-process (``JOB_CONCURRENCY`` jobs at
once); each of these commands adds one more, in its own process, until SIGTERM or
SIGINT (it then stops reading, gives running jobs ``--grace`` seconds, and leaves
the rest to be reclaimed by another worker).

Which stores: ``DATABASE_URL`` and ``REDIS_URL`` from the environment or ``.env``.
A variable left unset is read from ``DATA_DIR/local-stores.json``, where a running
local server (``make run``) publishes the URLs of the embedded servers it started
(unix sockets, no passwords; removed when it stops): the extra workers then share
its embedded PostgreSQL and Redis. With neither, the command says so and exits 2.

With ``JOB_QUEUE_URL`` set (SQS) jobs are run by the Lambda worker
(``functions/jobs_worker``), not by this command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

STORE_URLS = ("DATABASE_URL", "REDIS_URL")
_FILE = "local-stores.json"


def publish_local_store_urls(data_dir: Path, urls: dict[str, str]) -> Path | None:
    """Write the embedded stores' URLs for ``python -m common.worker`` (owner-only file)."""
    found = {k: v for k, v in urls.items() if k in STORE_URLS}
    if not found:
        return None
    path = data_dir / _FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"pid": os.getpid(), **found}, handle)
    return path


def withdraw_local_store_urls(data_dir: Path) -> None:
    path = data_dir / _FILE
    with contextlib.suppress(FileNotFoundError, OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def read_local_store_urls(data_dir: Path) -> dict[str, str]:
    """The URLs a running local server published; empty when none is running."""
    try:
        data = json.loads((data_dir / _FILE).read_text(encoding="utf-8"))
        os.kill(int(data["pid"]), 0)  # a file left by a killed server names dead sockets
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {k: str(v) for k, v in data.items() if k in STORE_URLS}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m common.worker", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default: JOB_CONCURRENCY)"
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds running jobs get on stop (10)"
    )
    return parser


def use_local_store_urls() -> str | None:
    """Fill unset store URLs from the local server's file; an error message, or None."""
    from common.config import get_settings

    settings = get_settings()
    missing = [name for name in STORE_URLS if not getattr(settings, name)]
    if not missing:
        return None
    published = read_local_store_urls(settings.DATA_DIR.expanduser().resolve())
    still = [name for name in missing if name not in published]
    if still:
        return (
            f"{' and '.join(still)} not set and no local server is running under DATA_DIR"
            f" ({settings.DATA_DIR}): start it first (make run), or set the URLs"
        )
    os.environ.update({name: published[name] for name in missing})
    get_settings.cache_clear()
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from common.config import get_settings
    from common.errors import AppError, ConfigError
    from common.logs import get_logger, set_level

    try:
        settings = get_settings()
        problem = use_local_store_urls()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.JOB_QUEUE_URL:
        print("error: JOB_QUEUE_URL is set: SQS jobs run on the Lambda worker", file=sys.stderr)
        return 2
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.concurrency is not None and args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    set_level(settings.LOG_LEVEL)
    log = get_logger("worker")

    from common.behind import flush_behind
    from common.jobs.worker import start_stream_worker
    from common.stores import reset_stores
    from common.stores.postgres import get_postgres

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()
        # A second Ctrl-C stops at once.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        get_postgres()  # migrates, and fails here (not in the loop) when unreachable
        worker = start_stream_worker(args.concurrency)
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    try:
        while not stop.wait(1.0):
            pass
    finally:
        worker.stop(grace_s=args.grace)
        # The history and cached answers of the last jobs, queued behind them.
        flush_behind(timeout_s=5.0)
        reset_stores()
    return 0


if __name__ == "__main__":
    sys.exit(main())
