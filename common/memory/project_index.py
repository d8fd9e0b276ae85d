"""A project's index as a job: queued by every change of its stored files.

The job (kind ``index``) reads the project's stored text files
(:mod:`common.storage.tree`) through :class:`StoredFiles`: their hashes first, the
content only of files the index does not hold at that hash, so an unchanged tree
costs two queries. Its state lives in ``project_meta.index`` (MongoDB), which
``GET /api/projects/{id}`` shows: ``queued``/``running`` with the job and the
revision it works on, ``ready`` with the revision, chunks and embedder of the last
completed run, ``failed`` with the error (searches still answer from the last
completed index).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from common.errors import AppError
from common.logs import get_logger
from common.memory.embedders import get_embedder
from common.memory.index import index_files
from common.memory.models import IndexReport, IndexState

if TYPE_CHECKING:
    from common.jobs import JobAccepted, JobContext

log = get_logger("memory.project_index")

# Paths read from MongoDB per query while indexing: bounds one answer's size.
READ_BATCH = 200


class StoredFiles:
    """:class:`~common.memory.index.FileSource` over a project's stored text files."""

    def __init__(self, project_id: UUID | str) -> None:
        from common.stores.mongo import get_mongo

        self.project_id = str(project_id)
        self.collection = get_mongo()["project_files"]

    def hashes(self) -> dict[str, str]:
        cursor = self.collection.find(
            {"project_id": self.project_id}, {"_id": 0, "path": 1, "sha256": 1}
        )
        return {doc["path"]: doc["sha256"] for doc in cursor}

    def read(self, paths: Sequence[str]) -> Iterator[tuple[str, str]]:
        for start in range(0, len(paths), READ_BATCH):
            cursor = self.collection.find(
                {
                    "project_id": self.project_id,
                    "path": {"$in": list(paths[start : start + READ_BATCH])},
                },
                {"_id": 0, "path": 1, "content": 1},
            )
            for doc in cursor:
                yield doc["path"], doc["content"]


def _meta() -> Any:
    from common.stores.mongo import get_mongo

    return get_mongo()["project_meta"]


def index_state(project_id: UUID | str) -> IndexState:
    """The project's index state (``none`` before any index job)."""
    doc = _meta().find_one({"project_id": str(project_id)}, {"_id": 0, "index": 1}) or {}
    return IndexState.model_validate(doc.get("index") or {})


def _set_state(project_id: UUID | str, **fields: Any) -> None:
    _meta().update_one(
        {"project_id": str(project_id)},
        {"$set": {f"index.{name}": value for name, value in fields.items()}},
        upsert=True,
    )


def queue_index_job(*, project_id: UUID, key_id: UUID, revision: str | None) -> JobAccepted:
    """Queue the project's index job (kind ``index``) and record it as ``queued``.

    Raises
    ------
    StoreUnavailable
        PostgreSQL failed: nothing was queued.
    """
    from common.jobs import submit_job
    from common.jobs.service import KeyRef

    accepted = submit_job(
        kind="index",
        input={"project_id": str(project_id)},
        principal=KeyRef(key_id),
        project_id=project_id,
    )
    _set_state(
        project_id,
        state="queued",
        job_id=str(accepted.job_id),
        pending_revision=revision,
        last_error=None,
    )
    log.info(
        "index job queued",
        extra={"project_id": str(project_id), "job_id": str(accepted.job_id)},
    )
    return accepted


def index_stored_files(
    *,
    project_id: UUID,
    revision: str | None,
    on_progress: Any = None,
    checkpoint: Any = None,
    embedder: Any = None,
    job_id: UUID | None = None,
) -> IndexReport:
    """Index the project's stored files now, recording the state as it goes.

    Raises
    ------
    StoreUnavailable, ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        Recorded as the state's ``last_error`` and raised again.
    """
    started = {"state": "running", "pending_revision": revision}
    if job_id is not None:
        started["job_id"] = str(job_id)
    _set_state(project_id, **started)
    try:
        report = index_files(
            project_id=project_id,
            files=StoredFiles(project_id),
            embedder=embedder or get_embedder(),
            revision=revision,
            on_progress=on_progress,
            checkpoint=checkpoint,
        )
    except AppError as exc:
        _set_state(
            project_id,
            state="failed",
            pending_revision=None,
            last_error={"code": exc.code, "message": exc.message},
        )
        raise
    except Exception:
        # A cancel, a lost lease: the job system records it; here the state must not
        # stay "running" for ever.
        _set_state(project_id, state="failed", pending_revision=None)
        raise
    _set_state(
        project_id,
        state="ready",
        revision=revision,
        pending_revision=None,
        chunks=report.chunks_total,
        files=report.files,
        embedder=report.embedder,
        indexed_at=datetime.now(UTC),
        last_error=None,
    )
    return report


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The ``index`` job: the project's stored files at their current revision."""
    from common.storage.tree import source_of

    project_id = UUID(str(input["project_id"]))
    source, version = source_of(project_id)
    started = time.monotonic()
    ctx.progress("reading", 1.0, f"revision {source.revision or '?'}")
    report = index_stored_files(
        project_id=project_id,
        revision=source.revision,
        on_progress=ctx.progress,
        checkpoint=ctx.raise_if_cancelled,
        job_id=ctx.job_id,
    )
    ctx.progress("done", 100.0, f"{report.embedded} chunks embedded")
    log.info(
        "index job done",
        extra={
            "project_id": str(project_id),
            "version": version,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return report.model_dump(mode="json")


def submit_index(*, project_id: UUID, principal: Any) -> JobAccepted:
    """``POST /api/projects/{id}/index`` with no files: (re)index the stored files as a job.

    Raises
    ------
    NotFound
        Not the caller's project.
    """
    from common.projects import get_project
    from common.storage.tree import source_of
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=principal.key_id, store=get_project_store())
    source, _ = source_of(project_id)
    return queue_index_job(project_id=project_id, key_id=principal.key_id, revision=source.revision)
