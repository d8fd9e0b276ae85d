"""Jobs: long work queued, run by a worker, stored in PostgreSQL, never lost.

An endpoint calls :func:`submit_job` and answers 202 with :class:`JobAccepted`;
``GET /api/jobs/{id}`` is :func:`get_job`, ``DELETE`` is :func:`cancel_job`,
``GET /api/jobs`` is :func:`list_jobs`. A worker runs the job's kind
(:mod:`common.jobs.kinds`) with a :class:`JobContext`.

Map of the package: ``models`` (what clients see), ``rules`` (the lifecycle's
decisions, pure), ``store`` (PostgreSQL: claims, heartbeats, finish, sweeper),
``queue`` (SQS or a Redis stream), ``events`` (pub/sub progress), ``context``
(:class:`JobContext`), ``runner`` (one delivery, start to outcome), ``worker``
(the local stream worker), ``service`` (the API above).
"""

from common.jobs.context import JobCancelled, JobContext
from common.jobs.models import JobAccepted, JobPage, JobProgress, JobStatus, JobSummary, JobView
from common.jobs.service import cancel_job, get_job, list_jobs, submit_job

__all__ = [
    "JobAccepted",
    "JobCancelled",
    "JobContext",
    "JobPage",
    "JobProgress",
    "JobStatus",
    "JobSummary",
    "JobView",
    "cancel_job",
    "get_job",
    "list_jobs",
    "submit_job",
]
