"""What a job looks like to a client: the 202 answer, its status view and its progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def status_url(job_id: UUID) -> str:
    return f"/api/jobs/{job_id}"


def ws_url(job_id: UUID) -> str:
    return f"/ws/jobs/{job_id}"


class JobAccepted(BaseModel):
    """The 202 answer of an endpoint that queued a job."""

    job_id: UUID
    status: str = "queued"
    status_url: str = Field(description="GET it for status, progress and result.")
    ws_url: str = Field(description="WebSocket that pushes the job's progress events.")


class JobProgress(BaseModel):
    step: str = ""
    percent: float = Field(0.0, ge=0, le=100)
    message: str = Field("", description="The last message, or the tail of the model's output.")


class JobSummary(BaseModel):
    """A job as its owner sees it, without its result (what ``GET /api/jobs`` lists)."""

    id: UUID
    kind: str
    status: JobStatus
    project_id: UUID | None = None
    progress: JobProgress
    error: dict[str, Any] | None = Field(None, description="{code, message, ...} when failed.")
    attempts: int = Field(description="How many times a worker started it (a worker may die).")
    cancel_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobView(JobSummary):
    """A job as its owner sees it, with its result."""

    result: dict[str, Any] | None = None


class JobPage(BaseModel):
    """One page of the caller's jobs, newest first."""

    items: list[JobSummary]
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


def view_from_row(row: dict[str, Any]) -> JobView:
    """A :class:`JobView` from a ``jobs`` row (validated: a bad row is an error, not a 200)."""
    return JobView(result=row.get("result"), **_summary_fields(row))


def summary_from_row(row: dict[str, Any]) -> JobSummary:
    """A :class:`JobSummary` from a ``jobs`` row read without its result."""
    return JobSummary(**_summary_fields(row))


def _summary_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "project_id": row.get("project_id"),
        "progress": JobProgress(
            step=row.get("progress_step") or "",
            percent=float(row.get("progress") or 0.0),
            message=row.get("progress_message") or "",
        ),
        "error": row.get("error"),
        "attempts": int(row.get("attempts") or 0),
        "cancel_requested": row.get("cancel_requested_at") is not None,
        "created_at": row["created_at"],
        "started_at": row.get("started_at"),
        "finished_at": row.get("finished_at"),
    }
