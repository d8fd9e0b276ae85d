"""The SQS side of the worker: one message → one job; the sweeper on a schedule.

``functions/jobs_worker`` feeds each record of an SQS batch to
:func:`handle_sqs_message` under Powertools' ``BatchProcessor``: a record that
raises is reported in ``batchItemFailures`` and comes back after the visibility
timeout; after 3 receives SQS moves it to the dead-letter queue. Only delivery
problems raise (a malformed message, PostgreSQL down): a job that fails is an
outcome, recorded, and its message is done. "busy" (another worker is on it) is
done too: if that worker dies, the sweeper sends the job again.
"""

from __future__ import annotations

from common.errors import InvalidInput
from common.jobs.queue import JobQueue, get_job_queue, parse_job_message
from common.jobs.runner import Outcome, RunSettings, process_job
from common.jobs.worker import SWEEP_LIMIT, worker_name
from common.lazy import Lazy
from common.logs import get_logger

log = get_logger("jobs.sqs")

# One name per Lambda instance (process): part of each claim's token.
_name: Lazy[str] = Lazy(lambda: "lambda:" + worker_name())


def handle_sqs_message(body: str | None) -> Outcome:
    """Run the job named by one SQS message body.

    Raises
    ------
    InvalidInput
        Not a job message (it fails until it reaches the dead-letter queue).
    StoreUnavailable
        PostgreSQL is down: SQS delivers it again later.
    """
    from common.jobs.events import get_event_sink
    from common.jobs.store import get_job_store

    job_id = parse_job_message(body)
    if job_id is None:
        raise InvalidInput('not a job message: expected {"job_id": "<uuid>"}')
    return process_job(
        job_id,
        worker=_name.get(),
        store=get_job_store(),
        events=get_event_sink(),
        limits=RunSettings.from_settings(),
    )


def sweep_jobs(queue: JobQueue | None = None) -> int:
    """Send again the queued jobs whose message was lost and the running jobs whose
    worker died (a scheduled event runs this on AWS)."""
    from common.config import get_settings
    from common.jobs.store import get_job_store

    settings = get_settings()
    due = get_job_store().due_for_enqueue(requeue_s=settings.JOB_REQUEUE_SECONDS, limit=SWEEP_LIMIT)
    queue = queue or get_job_queue()
    for job_id in due:
        queue.send(job_id)
    if due:
        log.info("re-enqueued jobs", extra={"count": len(due)})
    return len(due)
