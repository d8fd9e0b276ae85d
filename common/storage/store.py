"""Where storage keeps its state: MongoDB documents, PostgreSQL rows, the disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from common.config import get_settings


def storage_root(project_id: UUID | str) -> Path:
    """The project's folder: ``files/`` (the tree) and ``uploads/`` (parts in progress)."""
    return get_settings().DATA_DIR / "storage" / str(project_id)


def used_bytes(owner_key_id: UUID) -> int:
    """What the key keeps now, for its quota."""
    from common.stores.mongo import get_mongo

    rows = get_mongo()["storage_files"].aggregate(
        [
            {"$match": {"owner_key_id": str(owner_key_id)}},
            {"$group": {"_id": None, "total": {"$sum": "$size"}}},
        ]
    )
    return sum(int(row["total"]) for row in rows)


def usage_by_project(project_ids: list[UUID]) -> dict[UUID, tuple[int, int]]:
    """Bytes and file count kept for each of ``project_ids`` (absent: nothing kept)."""
    from common.stores.mongo import get_mongo

    if not project_ids:
        return {}
    rows = get_mongo()["storage_files"].aggregate(
        [
            {"$match": {"project_id": {"$in": [str(pid) for pid in project_ids]}}},
            {"$group": {"_id": "$project_id", "size": {"$sum": "$size"}, "files": {"$sum": 1}}},
        ]
    )
    return {UUID(row["_id"]): (int(row["size"]), int(row["files"])) for row in rows}


def delete_project_rows(project_id: UUID, owner_key_id: UUID) -> None:
    """Jobs first (they would cascade anyway; explicit so no job outlives its project),
    then the project row."""
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        conn.execute("DELETE FROM jobs WHERE project_id = %s", (project_id,))
        conn.execute(
            "DELETE FROM projects WHERE id = %s AND owner_key_id = %s", (project_id, owner_key_id)
        )


def delete_project_documents(project_id: UUID) -> None:
    from common.stores.mongo import get_mongo

    db = get_mongo()
    pid = str(project_id)
    for name in ("storage_files", "upload_sessions", "project_files", "project_meta"):
        db[name].delete_many({"project_id": pid})


def as_dict(doc: Any) -> dict[str, Any]:
    return dict(doc) if doc is not None else {}
