"""The local worker: reads the Redis stream, runs jobs in threads, sweeps.

One :class:`StreamWorker` is a consumer of the stream's group. Its loop, until stopped:

1. Every ``JOB_RECLAIM_IDLE_SECONDS / 2``: ``XAUTOCLAIM`` entries idle longer than
   ``JOB_RECLAIM_IDLE_SECONDS`` (their worker died mid-job, or was busy-skipped).
   Because running jobs' entries are re-claimed by their own worker on every
   heartbeat, a live worker's entries never get that old. The reclaim idle should
   be at least ``JOB_LEASE_SECONDS``, else a reclaimed job's lease has not expired
   yet and it waits one more round (left pending, not lost).
2. Otherwise ``XREADGROUP`` new entries, never more than it has free slots, so an
   entry does not wait in a busy worker's hands while another worker is idle.
3. Every ``JOB_SWEEP_SECONDS``: the sweeper (:meth:`JobStore.due_for_enqueue`)
   sends again the queued jobs whose message was lost and the running jobs whose
   lease expired; duplicates are harmless (see :mod:`common.jobs.rules`).

Each entry runs through :func:`common.jobs.runner.process_job` on its own thread
and is acknowledged (``XACK`` + ``XDEL``) unless the job is busy elsewhere. On
``stop()`` the worker reads nothing more and gives running jobs ``grace_s`` to end;
the rest die with the process: their entries stay pending, their leases expire, and
another worker (or this one, restarted) reclaims them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from common.errors import StoreUnavailable
from common.jobs.events import EventSink
from common.jobs.queue import RedisStreamQueue, StreamEntry
from common.jobs.runner import RunSettings, log_exception, process_job
from common.jobs.store import JobStore
from common.logs import get_logger

log = get_logger("jobs.worker")

SWEEP_LIMIT = 500
_BLOCK_MS = 500
_BACKOFF_S = 1.0


def worker_name() -> str:
    """A name unique to this worker: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 2
    reclaim_idle_s: float = 45.0
    sweep_every_s: float = 60.0  # 0: this worker never sweeps
    requeue_s: float = 300.0
    run: RunSettings = RunSettings()

    @classmethod
    def from_settings(cls, concurrency: int | None = None) -> WorkerSettings:
        from common.config import get_settings

        settings = get_settings()
        return cls(
            concurrency=max(1, concurrency or settings.JOB_CONCURRENCY or 1),
            reclaim_idle_s=settings.JOB_RECLAIM_IDLE_SECONDS,
            sweep_every_s=settings.JOB_SWEEP_SECONDS,
            requeue_s=settings.JOB_REQUEUE_SECONDS,
            run=RunSettings.from_settings(),
        )


class StreamWorker:
    """Runs jobs from the Redis stream until :meth:`stop`.

    Parameters
    ----------
    queue, store, events:
        The stream, the PostgreSQL jobs and the pub/sub sink.
    settings:
        Concurrency and the time limits.
    name:
        The consumer name (default: :func:`worker_name`).
    """

    def __init__(
        self,
        *,
        queue: RedisStreamQueue,
        store: JobStore,
        events: EventSink,
        settings: WorkerSettings,
        name: str | None = None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.events = events
        self.settings = settings
        self.name = name or worker_name()
        self._running: dict[str, str] = {}  # entry id -> job id
        self._slots = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = "0-0"
        self._next_reclaim = 0.0
        self._next_sweep = 0.0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> StreamWorker:
        self._thread = threading.Thread(target=self.run, name="job-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop reading; wait up to ``grace_s`` for running jobs (the rest die with the process)."""
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=_BLOCK_MS / 1000 + 5)
        deadline = time.monotonic() + grace_s
        with self._slots:
            while self._running and time.monotonic() < deadline:
                self._slots.wait(timeout=max(0.0, deadline - time.monotonic()))
            left = list(self._running.values())
        if left:
            log.warning(
                "stopping with jobs still running; another worker will take them over",
                extra={"worker": self.name, "jobs": left},
            )
        self.queue.forget_consumer(self.name)

    @property
    def running_jobs(self) -> list[str]:
        with self._slots:
            return list(self._running.values())

    # -- the loop ------------------------------------------------------------

    def run(self) -> None:
        """The read loop (``start()`` runs it in a thread; ``python -m common.worker`` directly)."""
        log.info(
            "job worker started",
            extra={"worker": self.name, "concurrency": self.settings.concurrency},
        )
        while not self._stopping.is_set():
            try:
                self._step()
            except StoreUnavailable as exc:
                log.warning("job worker waiting for its stores", extra={"error": exc.message})
                self._stopping.wait(_BACKOFF_S)
            except Exception:
                log_exception("job worker loop error", {"worker": self.name})
                self._stopping.wait(_BACKOFF_S)
        log.info("job worker stopped reading", extra={"worker": self.name})

    def _free_slots(self) -> int:
        with self._slots:
            while len(self._running) >= self.settings.concurrency:
                if self._stopping.is_set():
                    return 0
                self._slots.wait(timeout=_BLOCK_MS / 1000)
            return self.settings.concurrency - len(self._running)

    def _step(self) -> None:
        now = time.monotonic()
        if self.settings.sweep_every_s and now >= self._next_sweep:
            self._next_sweep = now + self.settings.sweep_every_s
            self.sweep()
        free = self._free_slots()
        if free <= 0:
            return
        entries: list[StreamEntry] = []
        if now >= self._next_reclaim:
            self._cursor, entries = self.queue.reclaim(
                self.name,
                min_idle_ms=int(self.settings.reclaim_idle_s * 1000),
                count=free,
                start=self._cursor,
            )
            if self._cursor == "0-0":  # scanned the whole pending list: rest a while
                self._next_reclaim = now + self.settings.reclaim_idle_s / 2
            if entries:
                log.info(
                    "reclaimed idle stream entries (a worker died, or the job was busy)",
                    extra={"worker": self.name, "entries": [e.entry_id for e in entries]},
                )
        if not entries:
            entries = self.queue.read(self.name, count=free, block_ms=_BLOCK_MS)
        for entry in entries:
            self._dispatch(entry)

    def _dispatch(self, entry: StreamEntry) -> None:
        if entry.job_id is None:
            log.warning("malformed job entry; dropping it", extra={"entry": entry.entry_id})
            self.queue.ack(entry.entry_id)
            return
        with self._slots:
            if entry.entry_id in self._running:
                return  # ours and still running (a beat came late): nothing to do
            self._running[entry.entry_id] = str(entry.job_id)
        # Daemon threads, not a pool: a job still running when the process exits dies
        # with it (its lease then expires) instead of holding the exit up.
        threading.Thread(
            target=self._handle, args=(entry,), name=f"job-{entry.job_id}", daemon=True
        ).start()

    def _handle(self, entry: StreamEntry) -> None:
        assert entry.job_id is not None
        try:
            outcome = process_job(
                entry.job_id,
                worker=self.name,
                store=self.store,
                events=self.events,
                limits=self.settings.run,
                on_beat=lambda: self.queue.touch(self.name, [entry.entry_id]),
            )
            if outcome.done_with_message:
                self.queue.ack(entry.entry_id)
        except Exception:
            # Left pending: reclaimed after the idle time and tried again.
            log_exception("job delivery failed", {"job_id": str(entry.job_id)})
        finally:
            with self._slots:
                self._running.pop(entry.entry_id, None)
                self._slots.notify_all()

    def sweep(self) -> int:
        """Send again the jobs whose message was lost or whose worker died."""
        due = self.store.due_for_enqueue(requeue_s=self.settings.requeue_s, limit=SWEEP_LIMIT)
        for job_id in due:
            self.queue.send(job_id)
        if due:
            log.info("re-enqueued jobs", extra={"count": len(due), "worker": self.name})
        return len(due)


def start_stream_worker(concurrency: int | None = None) -> StreamWorker:
    """A :class:`StreamWorker` on this process's stores and settings, started."""
    from common.jobs.events import get_event_sink
    from common.jobs.store import get_job_store
    from common.stores.redis_store import get_redis

    queue = RedisStreamQueue(get_redis())
    queue.ensure_group()
    return StreamWorker(
        queue=queue,
        store=get_job_store(),
        events=get_event_sink(),
        settings=WorkerSettings.from_settings(concurrency),
    ).start()


def start_local_worker() -> StreamWorker | None:
    """The local server's in-process worker; None with ``JOB_CONCURRENCY=0`` or on SQS."""
    from common.config import get_settings

    settings = get_settings()
    if settings.JOB_QUEUE_URL or settings.JOB_CONCURRENCY == 0:
        return None
    return start_stream_worker(settings.JOB_CONCURRENCY)
