"""Projects: a named set of code owned by one API key, and its semantic index.

A project is visible to the key that created it only: any other key gets the
same 404 as for a project that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from common.errors import NotFound
from common.memory.embedders import get_embedder
from common.memory.index import index_files, search
from common.memory.models import IndexReport, SearchOutput
from common.stores.projects_store import ProjectStore

ProjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ProjectCreate(BaseModel):
    name: ProjectName = Field(description="A name for people; need not be unique.")


class ProjectPublic(BaseModel):
    id: UUID
    name: str
    created_at: datetime


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


def index_project(
    *, project_id: UUID, owner_key_id: UUID, files: dict[str, str], store: ProjectStore
) -> IndexReport:
    """Index the project's files (the whole set) for semantic search.

    Raises
    ------
    NotFound
        Not the caller's project.
    StoreUnavailable, ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        Qdrant or the embedder failed.
    """
    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store)
    report = index_files(project_id=project_id, files=files)
    save_project_files(project_id, files)
    return report


def save_project_files(project_id: UUID, files: dict[str, str], *, replace: bool = True) -> None:
    """Keep ``files`` as the project's files in MongoDB: the whole set, or with
    ``replace=False`` added to (and over) those already kept, as an upload does."""
    from pymongo import DeleteMany, ReplaceOne

    from common.stores.mongo import get_mongo

    pid = str(project_id)
    writes: list[Any] = [
        ReplaceOne(
            {"project_id": pid, "path": path},
            {
                "project_id": pid,
                "path": path,
                "content": content,
                "sha256": hashlib.sha256(content.encode()).hexdigest(),
            },
            upsert=True,
        )
        for path, content in files.items()
    ]
    if replace:
        writes.append(DeleteMany({"project_id": pid, "path": {"$nin": list(files)}}))
    if not writes:
        return
    get_mongo()["project_files"].bulk_write(writes, ordered=False)


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
    hits = search(project_id, query, k, embedder=embedder)
    return SearchOutput(hits=hits, embedder=embedder.name)
