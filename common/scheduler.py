"""The git-sync scheduler: one ``git_sync`` job per project whose sync is due.

On AWS an EventBridge rule invokes ``functions/git_sync_scheduled`` every 5
minutes; the local server runs :func:`start_local_scheduler` (every
``GIT_SYNC_INTERVAL_SECONDS``), and ``python -m common.scheduler`` runs the same
loop alone. Any number may run at once: :meth:`GitSyncStore.claim_due` takes due
projects with ``FOR UPDATE SKIP LOCKED`` and moves their next time on in the same
transaction, so each due project is claimed by one scheduler only; the job itself
holds the project's advisory lock, so a sync never overlaps another.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any
from uuid import UUID

from common.errors import AppError
from common.git.service import GitSyncInput, parse_schedule, submit_sync
from common.git.store import GitSyncStore
from common.logs import get_logger

log = get_logger("scheduler")

BATCH = 100


def run_due(*, store: GitSyncStore, limit: int = BATCH) -> list[dict[str, Any]]:
    """Queue a sync job for every due project (at most ``limit``).

    Returns
    -------
    list[dict]
        One entry per claimed project: ``project_id``, ``run_id`` and ``job_id``
        (None when it could not be queued; the run then says why).
    """
    from common.auth import Principal

    queued: list[dict[str, Any]] = []
    for row in store.claim_due(limit=limit, interval_of=parse_schedule):
        project_id, run_id = UUID(str(row["id"])), UUID(str(row["run_id"]))
        owner = store.owner_principal(UUID(str(row["owner_key_id"])))
        entry: dict[str, Any] = {"project_id": project_id, "run_id": run_id, "job_id": None}
        queued.append(entry)
        if owner is None:
            store.update_run(run_id, status="failed", message="the owning API key was revoked")
            continue
        try:
            accepted = submit_sync(
                project_id=project_id,
                principal=Principal.model_validate(owner),
                body=GitSyncInput(),
                store=store,
                trigger="schedule",
                run_id=run_id,
            )
        except AppError as exc:
            store.update_run(run_id, status="failed", message=exc.message)
            continue
        entry["job_id"] = accepted.job_id
    if queued:
        log.info("git sync scheduled", extra={"projects": len(queued)})
    return queued


def run_once() -> list[dict[str, Any]]:
    """One pass on the process-wide stores (the Lambda function and ``--once``)."""
    from common.git.store import get_git_sync_store

    return run_due(store=get_git_sync_store())


class LocalScheduler:
    """A daemon thread calling :func:`run_once` every ``interval_s`` until stopped."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="git-sync-scheduler", daemon=True)

    def start(self) -> LocalScheduler:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                run_once()
            except Exception as exc:  # a store outage: try again next tick
                log.warning("git sync scheduler pass failed", extra={"error": type(exc).__name__})


def start_local_scheduler() -> LocalScheduler | None:
    """The local server's scheduler; None with ``GIT_SYNC_INTERVAL_SECONDS=0``."""
    from common.config import get_settings

    interval = get_settings().GIT_SYNC_INTERVAL_SECONDS
    if interval <= 0:
        return None
    return LocalScheduler(interval).start()


def main(argv: list[str] | None = None) -> None:
    from common.config import get_settings
    from common.stores.postgres import get_postgres

    parser = argparse.ArgumentParser(description="Queue git sync jobs for due projects.")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args(argv)
    # Like `python -m common.worker`: store URLs left unset come from the running
    # local server's embedded stores.
    from common.worker import use_local_store_urls

    problem = use_local_store_urls()
    if problem:
        raise SystemExit(f"error: {problem}")
    get_postgres().ensure_migrated()
    if args.once:
        print(len(run_once()))
        return
    scheduler = LocalScheduler(get_settings().GIT_SYNC_INTERVAL_SECONDS or 60.0).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        scheduler.stop()


if __name__ == "__main__":
    main()
