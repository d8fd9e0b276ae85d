"""StorageManager: resumable uploads, safe unpacking, metadata, download, delete.

An upload is a session (a MongoDB document) and a part file on disk. Each chunk is
written straight from the request's stream to the part file at its offset, so memory
stays flat whatever the size. The SHA-256 is computed as the bytes pass: the running
hash lives in this process keyed by (upload, offset); a chunk that arrives at another
process (or after a restart) rebuilds it by re-reading the stored prefix once, since
hashlib cannot serialise its state and a resume is rare.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio.to_thread

from common.config import get_settings
from common.errors import AppError, BadRequest, Conflict, InvalidInput, NotFound, PayloadTooLarge
from common.logs import get_logger
from common.projects import get_project, save_project_files
from common.storage import store
from common.storage.models import (
    ProjectDetail,
    StoredFile,
    TreeNode,
    UploadCreate,
    UploadPublic,
)
from common.storage.ranges import parse_content_range, parse_range
from common.storage.unpack import (
    UnpackLimits,
    archive_kind,
    remove_tree,
    safe_member_path,
    unpack_archive,
)
from common.stores.projects_store import ProjectStore

log = get_logger("storage")

_PIECE = 1 << 20
# Text files up to this size also go to `project_files`, where the code actions'
# `project_id` input reads them.
TEXT_FILE_MAX_BYTES = 2 * 1024 * 1024
# The running hashes, (upload id) -> (offset, hash); bounded by the uploads in flight.
_HASHES: dict[str, tuple[int, Any]] = {}


class QuotaExceeded(PayloadTooLarge):
    code = "quota_exceeded"


class ChecksumMismatch(InvalidInput):
    code = "checksum_mismatch"


def _quota_check(owner_key_id: UUID, adding: int) -> None:
    quota = get_settings().STORAGE_QUOTA_BYTES
    used = store.used_bytes(owner_key_id)
    if used + adding > quota:
        raise QuotaExceeded(
            f"this key keeps {used} bytes; {adding} more would pass STORAGE_QUOTA_BYTES",
            details={"quota_bytes": quota, "used_bytes": used},
        )


def _sessions() -> Any:
    from common.stores.mongo import get_mongo

    return get_mongo()["upload_sessions"]


def _public(doc: dict[str, Any]) -> UploadPublic:
    return UploadPublic(
        upload_id=doc["_id"],
        project_id=doc["project_id"],
        filename=doc["filename"],
        size=doc.get("size"),
        offset=doc["offset"],
        state=doc["state"],
        sha256=doc.get("result_sha256"),
        files=doc.get("files"),
        version=doc.get("version"),
        upload_url=f"/api/projects/{doc['project_id']}/uploads/{doc['_id']}",
    )


def _part_path(project_id: str, upload_id: str) -> Path:
    return store.storage_root(project_id) / "uploads" / f"{upload_id}.part"


def start_upload(
    *, project_id: UUID, owner_key_id: UUID, body: UploadCreate, store_: ProjectStore
) -> UploadPublic:
    """Open an upload session for ``body.filename``.

    Raises
    ------
    NotFound
        Not the caller's project.
    InvalidInput
        A filename that would leave the project folder.
    QuotaExceeded
        The declared size would pass the key's quota.
    """
    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    if archive_kind(body.filename) is None:
        safe_member_path(body.filename)
    if body.size is not None:
        _quota_check(owner_key_id, body.size)
    upload_id = str(uuid.uuid4())
    part = _part_path(str(project_id), upload_id)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.touch()
    doc = {
        "_id": upload_id,
        "project_id": str(project_id),
        "owner_key_id": str(owner_key_id),
        "filename": body.filename,
        "size": body.size,
        "sha256": body.sha256,
        "offset": 0,
        "state": "receiving",
        "created_at": datetime.now(UTC),
    }
    _sessions().insert_one(doc)
    _HASHES[upload_id] = (0, hashlib.sha256())
    return _public(doc)


def _session(project_id: UUID, upload_id: UUID, owner_key_id: UUID) -> dict[str, Any]:
    doc: dict[str, Any] | None = _sessions().find_one(
        {"_id": str(upload_id), "project_id": str(project_id), "owner_key_id": str(owner_key_id)}
    )
    if doc is None:
        raise NotFound(f"no upload {upload_id}")
    return doc


def upload_status(*, project_id: UUID, upload_id: UUID, owner_key_id: UUID) -> UploadPublic:
    """Where the upload stands: ``offset`` is where the next chunk starts.

    Raises
    ------
    NotFound
        No such upload in the caller's project.
    """
    return _public(_session(project_id, upload_id, owner_key_id))


def _hash_at(upload_id: str, part: Path, offset: int) -> Any:
    cached = _HASHES.get(upload_id)
    if cached is not None and cached[0] == offset:
        return cached[1]
    hasher = hashlib.sha256()
    left = offset
    with part.open("rb") as source:
        while left > 0:
            piece = source.read(min(_PIECE, left))
            if not piece:
                break
            hasher.update(piece)
            left -= len(piece)
    return hasher


async def receive_chunk(
    *,
    project_id: UUID,
    upload_id: UUID,
    owner_key_id: UUID,
    content_range: str | None,
    offset: int | None,
    stream: AsyncIterator[bytes],
    store_: ProjectStore,
) -> UploadPublic:
    """Write one chunk from ``stream`` at its offset; complete the upload on its last byte.

    The chunk must start at the session's offset (what a status call answers). If the
    client goes away mid-chunk, what arrived is kept and the offset says so.

    Raises
    ------
    NotFound, BadRequest, Conflict
        No such upload; a malformed range; a chunk that does not start at the offset,
        or an upload that is no longer receiving.
    QuotaExceeded, ChecksumMismatch, UnsafeArchive
    """
    run = anyio.to_thread.run_sync
    await run(lambda: get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_))
    doc = await run(lambda: _session(project_id, upload_id, owner_key_id))
    if doc["state"] != "receiving":
        raise Conflict(f"the upload is {doc['state']}", details={"offset": doc["offset"]})
    size: int | None = doc.get("size")
    if content_range is not None:
        chunk = parse_content_range(content_range)
        start, expected = chunk.start, chunk.length
        if chunk.total is not None:
            if size is not None and size != chunk.total:
                raise BadRequest(f"Content-Range's total is not the upload's size {size}")
            size = chunk.total
    elif offset is not None:
        if size is None:
            # Without a total nothing would ever say which chunk is the last.
            raise BadRequest("an upload sent by ?offset= needs its size given at start")
        start, expected = offset, None
    else:
        raise BadRequest("send Content-Range: bytes a-b/total, or ?offset=")
    if start != doc["offset"]:
        raise Conflict(
            f"the chunk starts at {start}; the upload has {doc['offset']} bytes",
            details={"offset": doc["offset"]},
        )
    limit_end = start + (expected or 0)
    if size is not None and limit_end > size:
        raise BadRequest("the chunk goes past the upload's size")
    await run(_quota_check, owner_key_id, limit_end)

    uid = str(upload_id)
    part = _part_path(doc["project_id"], uid)
    hasher = await run(_hash_at, uid, part, start)
    written = 0
    error: BaseException | None = None
    with part.open("r+b") as out:
        out.seek(start)
        out.truncate()  # bytes past the offset are a previous chunk's unrecorded tail
        try:
            async for piece in stream:
                if not piece:
                    continue
                if expected is not None and written + len(piece) > expected:
                    raise BadRequest("the body is longer than its Content-Range")
                if size is not None and start + written + len(piece) > size:
                    raise BadRequest("the body goes past the upload's size")
                out.write(piece)
                hasher.update(piece)
                written += len(piece)
        except BaseException as exc:  # a disconnect too: keep what arrived, then re-raise
            error = exc
        if isinstance(error, BadRequest):
            # The whole chunk is refused: what it wrote is dropped with the hash's state.
            out.truncate(start)
            written = 0
            hasher = None
    new_offset = start + written
    if hasher is not None:
        _HASHES[uid] = (new_offset, hasher)
    else:
        _HASHES.pop(uid, None)
    update: dict[str, Any] = {"offset": new_offset, "size": size}
    await run(lambda: _sessions().update_one({"_id": uid}, {"$set": update}))
    doc.update(update)
    if error is not None:
        raise error
    if expected is not None and written != expected:
        raise BadRequest(
            f"the body had {written} bytes, not the {expected} of its Content-Range",
            details={"offset": new_offset},
        )
    if size is not None and new_offset == size:
        return await run(lambda: _complete(doc, owner_key_id, hasher))
    return _public(doc)


def _fail(doc: dict[str, Any], part: Path) -> None:
    part.unlink(missing_ok=True)
    _HASHES.pop(doc["_id"], None)
    _sessions().update_one({"_id": doc["_id"]}, {"$set": {"state": "failed"}})


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(_PIECE):
            hasher.update(piece)
    return hasher.hexdigest()


def _complete(doc: dict[str, Any], owner_key_id: UUID, hasher: Any) -> UploadPublic:
    """Check the hash, unpack or keep the file, record its metadata. Nothing partial is
    left when any step refuses."""
    settings = get_settings()
    uid, pid = doc["_id"], doc["project_id"]
    part = _part_path(pid, uid)
    root = store.storage_root(pid)
    digest = hasher.hexdigest() if hasher is not None else _file_sha256(part)
    if doc.get("sha256") and doc["sha256"] != digest:
        _fail(doc, part)
        raise ChecksumMismatch(
            "the bytes received do not have the declared sha256", details={"sha256": digest}
        )
    kind = archive_kind(doc["filename"])
    staging = root / f"staging-{uid}"
    try:
        if kind is None:
            names = [safe_member_path(doc["filename"])]
            staging.mkdir(parents=True)
            os.replace(part, staging / "file")
            sources = {names[0]: staging / "file"}
        else:
            limits = UnpackLimits(
                max_file_bytes=settings.UNPACK_MAX_FILE_BYTES,
                max_total_bytes=settings.UNPACK_MAX_TOTAL_BYTES,
                max_ratio=settings.UNPACK_MAX_RATIO,
                max_files=settings.UNPACK_MAX_FILES,
            )
            staging.mkdir(parents=True)
            names = unpack_archive(part, kind, staging, limits)
            sources = {name: staging / name for name in names}
        sizes = {name: path.stat().st_size for name, path in sources.items()}
        _quota_check(owner_key_id, sum(sizes.values()))
        hashes = {
            name: (digest if kind is None else _file_sha256(path)) for name, path in sources.items()
        }
        texts = _texts(sources, sizes)
    except AppError:
        remove_tree(staging)
        _fail(doc, part)
        raise
    from pymongo import ReturnDocument, UpdateOne

    from common.stores.mongo import get_mongo

    db = get_mongo()
    meta = db["project_meta"].find_one_and_update(
        {"project_id": pid},
        {"$inc": {"storage_version": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    version = int((meta or {}).get("storage_version", 1))
    files_dir = root / "files"
    for name, source in sources.items():
        target = files_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    remove_tree(staging)
    part.unlink(missing_ok=True)
    _HASHES.pop(uid, None)
    writes = [
        UpdateOne(
            {"project_id": pid, "path": name},
            {
                "$set": {
                    "owner_key_id": str(owner_key_id),
                    "size": sizes[name],
                    "sha256": hashes[name],
                    "version": version,
                }
            },
            upsert=True,
        )
        for name in names
    ]
    if writes:
        db["storage_files"].bulk_write(writes, ordered=False)
    save_project_files(UUID(pid), texts, replace=False)
    done = {"state": "complete", "result_sha256": digest, "files": len(names), "version": version}
    _sessions().update_one({"_id": uid}, {"$set": done})
    doc.update(done)
    log.info(
        "upload complete", extra={"project_id": pid, "files": len(names), "bytes": doc["offset"]}
    )
    return _public(doc)


def _texts(sources: dict[str, Path], sizes: dict[str, int]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for name, path in sources.items():
        if sizes[name] > TEXT_FILE_MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\x00" in data:
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def _tree(files: list[StoredFile]) -> TreeNode:
    root = TreeNode(name="", path="", type="dir", size=0, children=[])
    dirs: dict[str, TreeNode] = {"": root}
    for item in files:
        parts = item.path.split("/")
        parent = root
        for depth in range(1, len(parts)):
            key = "/".join(parts[:depth])
            node = dirs.get(key)
            if node is None:
                node = TreeNode(name=parts[depth - 1], path=key, type="dir", size=0, children=[])
                dirs[key] = node
                assert parent.children is not None
                parent.children.append(node)
            parent = node
        assert parent.children is not None
        parent.children.append(
            TreeNode(name=parts[-1], path=item.path, type="file", size=item.size)
        )
        for depth in range(len(parts)):
            dirs["/".join(parts[:depth])].size += item.size
    return root


def project_detail(*, project_id: UUID, owner_key_id: UUID, store_: ProjectStore) -> ProjectDetail:
    """The project with its stored files and their tree.

    Raises
    ------
    NotFound
        Not the caller's project.
    """
    from common.stores.mongo import get_mongo

    project = get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    db = get_mongo()
    pid = str(project_id)
    cursor = (
        db["storage_files"]
        .find({"project_id": pid}, {"_id": 0, "path": 1, "size": 1, "sha256": 1, "version": 1})
        .sort("path", 1)
    )
    files = [StoredFile.model_validate(doc) for doc in cursor]
    meta = db["project_meta"].find_one({"project_id": pid}) or {}
    return ProjectDetail(
        id=project.id,
        name=project.name,
        created_at=project.created_at,
        version=int(meta.get("storage_version", 0)),
        size_bytes=sum(f.size for f in files),
        files=files,
        tree=_tree(files),
    )


@dataclass(frozen=True)
class Download:
    path: Path
    size: int
    sha256: str
    span: tuple[int, int] | None  # (first, last) inclusive when a range was asked


def open_download(
    *,
    project_id: UUID,
    owner_key_id: UUID,
    path: str,
    range_header: str | None,
    store_: ProjectStore,
) -> Download:
    """The stored file ``path`` and the part of it asked for.

    Raises
    ------
    NotFound
        Not the caller's project, or no such file.
    RangeNotSatisfiable
    """
    from common.stores.mongo import get_mongo

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    doc = get_mongo()["storage_files"].find_one({"project_id": str(project_id), "path": path})
    disk = store.storage_root(project_id) / "files" / path
    if doc is None or not disk.is_file():
        raise NotFound(f"no file {path!r} in the project")
    size = disk.stat().st_size
    return Download(disk, size, str(doc["sha256"]), parse_range(range_header, size))


def iter_file(path: Path, first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first``..``last`` of ``path``, a megabyte at a time."""
    with path.open("rb") as source:
        source.seek(first)
        left = last - first + 1
        while left > 0:
            piece = source.read(min(_PIECE, left))
            if not piece:
                return
            left -= len(piece)
            yield piece


def delete_project(*, project_id: UUID, owner_key_id: UUID, store_: ProjectStore) -> None:
    """Remove the project: its vectors, files, documents, jobs and row, in that order, so
    a failure part way leaves the project findable and the delete can be repeated.

    Raises
    ------
    NotFound
        Not the caller's project.
    StoreUnavailable
    """
    from common.memory.index import delete_index

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    delete_index(project_id=project_id)
    remove_tree(store.storage_root(project_id))
    # Its git workspace (a clone) goes too; the git module owns where that lives.
    from common.git.service import workspace_of

    remove_tree(workspace_of(get_settings(), project_id))
    store.delete_project_documents(project_id)
    store.delete_project_rows(project_id, owner_key_id)
    log.info("project deleted", extra={"project_id": str(project_id)})
