"""Projects: a named set of code owned by one API key, and its semantic index.

A project is visible to the key that created it only: any other key gets the
same 404 as for a project that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from common.errors import InvalidInput, NotFound
from common.memory.embedders import get_embedder
from common.memory.index import find
from common.memory.models import IndexReport, SearchOutput
from common.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, field_error, next_cursor
from common.stores.projects_store import ProjectStore

ProjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ProjectCreate(BaseModel):
    name: ProjectName = Field(description="A name for people; need not be unique.")


class ProjectPublic(BaseModel):
    id: UUID
    name: str
    created_at: datetime


class GitLinkSummary(BaseModel):
    """A project's git link at a glance; ``GET .../git/status`` has the runs and the commit."""

    remote_url: str
    branch: str | None
    schedule: str | None = Field(description='"15m", "2h", "1d"; null: synced by hand only.')
    next_sync_at: datetime | None
    last_sync_status: str | None = Field(
        description="queued, running, succeeded, failed or skipped; null: never synced."
    )
    last_sync_at: datetime | None = Field(description="When the latest sync run started.")


class ProjectSummary(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    updated_at: datetime = Field(description="Its files or git link last changed.")
    size_bytes: int = Field(description="Bytes of its stored files (uploads).")
    files: int = Field(description="How many stored files.")
    git: GitLinkSummary | None = Field(description="Null: not linked to a git remote.")


class ProjectPage(BaseModel):
    """One page of the caller's projects, newest first."""

    items: list[ProjectSummary]
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


Usage = Callable[[list[UUID]], dict[UUID, tuple[int, int]]]


def _public(row: dict[str, Any]) -> ProjectPublic:
    return ProjectPublic.model_validate(row, from_attributes=False)


def create_project(*, name: str, owner_key_id: UUID, store: ProjectStore) -> ProjectPublic:
    """Create a project owned by ``owner_key_id``.

    Parameters
    ----------
    name:
        Its name (already validated by :class:`ProjectCreate`).
    owner_key_id:
        The API key that will own it.
    store:
        Where projects live.

    Returns
    -------
    ProjectPublic
    """
    return _public(store.insert_project(name=name, owner_key_id=owner_key_id))


def get_project(*, project_id: UUID, owner_key_id: UUID, store: ProjectStore) -> ProjectPublic:
    """The project ``project_id`` when ``owner_key_id`` owns it.

    Raises
    ------
    NotFound
        No such project, or another key's: the two are not told apart.
    """
    row = store.find_project(project_id=project_id, owner_key_id=owner_key_id)
    if row is None:
        raise NotFound(f"no project {project_id}")
    return _public(row)


def list_projects(
    *,
    owner_key_id: UUID,
    store: ProjectStore,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    usage: Usage | None = None,
) -> ProjectPage:
    """The key's projects, newest first, a page at a time.

    Parameters
    ----------
    owner_key_id:
        The caller: only its own projects are listed.
    store:
        Where projects live.
    limit:
        Projects per page, 1 to :data:`~common.paging.MAX_LIMIT`.
    cursor:
        ``next_cursor`` of the previous page; None for the first.
    usage:
        Bytes and file count per project id; defaults to the stored files in
        MongoDB (:func:`common.storage.store.usage_by_project`), one query a page.

    Returns
    -------
    ProjectPage

    Raises
    ------
    InvalidInput
        A limit out of range or a cursor this server did not give (``fields`` names it).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}",
            details={"fields": [field_error("query.limit", "range", f"1 to {MAX_LIMIT}")]},
        )
    after = decode_cursor(cursor) if cursor else None
    rows = store.list_projects(owner_key_id=owner_key_id, after=after, limit=limit + 1)
    following = next_cursor(rows, limit)
    if usage is None:
        from common.storage.store import usage_by_project

        usage = usage_by_project
    kept = usage([UUID(str(row["id"])) for row in rows])
    items = []
    for row in rows:
        size, count = kept.get(UUID(str(row["id"])), (0, 0))
        git = None
        if row.get("git_remote"):
            git = GitLinkSummary(
                remote_url=row["git_remote"],
                branch=row.get("git_branch"),
                schedule=row.get("sync_schedule"),
                next_sync_at=row.get("next_sync_at"),
                last_sync_status=row.get("last_sync_status"),
                last_sync_at=row.get("last_sync_at"),
            )
        items.append(
            ProjectSummary(
                id=row["id"],
                name=row["name"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                size_bytes=size,
                files=count,
                git=git,
            )
        )
    return ProjectPage(items=items, next_cursor=following)


def index_project(
    *, project_id: UUID, owner_key_id: UUID, files: dict[str, str], store: ProjectStore
) -> IndexReport:
    """Keep ``files`` (the whole set) as the project's files and index them now.

    For small inputs given in a body; stored files (uploads, git) are indexed by the
    project's index job (:mod:`common.memory.project_index`).

    Raises
    ------
    NotFound
        Not the caller's project.
    StoreUnavailable, ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        Qdrant or the embedder failed.
    """
    from common.memory.project_index import index_stored_files
    from common.storage.tree import store_texts

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store)
    change = store_texts(
        project_id=project_id, owner_key_id=owner_key_id, files=files, queue_index=False
    )
    return index_stored_files(project_id=project_id, revision=change.revision)


def load_project_files(*, project_id: UUID, owner_key_id: UUID) -> dict[str, str]:
    """The project's stored files, path -> content.

    Raises
    ------
    NotFound
        Not the caller's project.
    """
    from common.stores.mongo import get_mongo
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=get_project_store())
    cursor = get_mongo()["project_files"].find(
        {"project_id": str(project_id)}, {"_id": 0, "path": 1, "content": 1}
    )
    return {doc["path"]: doc["content"] for doc in cursor}


def search_project(
    *, project_id: UUID, owner_key_id: UUID, query: str, k: int, store: ProjectStore
) -> SearchOutput:
    """The ``k`` chunks of the project closest in meaning to ``query``.

    Raises
    ------
    NotFound
        Not the caller's project.
    Conflict
        The project was indexed with another embedder: index it again.
    StoreUnavailable, ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
    """
    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store)
    embedder = get_embedder()
    found = find(project_id, query, k, embedder=embedder)
    return SearchOutput(hits=found.hits, embedder=embedder.name, revision=found.revision)


def load_project_file(*, project_id: UUID, owner_key_id: UUID, path: str) -> str:
    """One stored file's text.

    Raises
    ------
    NotFound
        Not the caller's project.
    InvalidInput
        No such file, or one not read as code (binary, oversized): ``fields`` says so.
    """
    from common.stores.mongo import get_mongo
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=get_project_store())
    doc = get_mongo()["project_files"].find_one(
        {"project_id": str(project_id), "path": path}, {"_id": 0, "content": 1}
    )
    if doc is None:
        raise InvalidInput(
            "`path` names no file of the project that is read as code",
            details={
                "fields": [
                    field_error("body.path", "unknown_file", "not a text file of the project")
                ]
            },
        )
    return str(doc["content"])
