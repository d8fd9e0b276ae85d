"""StorageManager: resumable uploads, safe unpacking, metadata, download, delete.

An upload is a session (a MongoDB document) and a part file on disk. Each chunk is
written straight from the request's stream to the part file at its offset, so memory
stays flat whatever the size. The SHA-256 is computed as the bytes pass: the running
hash lives in this process keyed by (upload, offset); a chunk that arrives at another
process (or after a restart) rebuilds it by re-reading the stored prefix once, since
hashlib cannot serialise its state and a resume is rare. Writers of one upload take
an exclusive lock on its part file, so two racing PUTs of the same chunk never
interleave their bytes or their hash updates: the second sees the first's offset.

With ``PROJECTS_BUCKET`` set (AWS), the bytes go to S3 instead: see
:mod:`common.storage.s3_uploads`. Sessions, metadata and the API are the same.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import anyio.to_thread

from common.config import get_settings
from common.errors import AppError, BadRequest, Conflict, InvalidInput, NotFound, PayloadTooLarge
from common.logs import get_logger
from common.projects import get_project
from common.storage import store
from common.storage.models import (
    ProjectDetail,
    StoredFile,
    TreeNode,
    UploadCreate,
    UploadPublic,
)
from common.storage.ranges import parse_content_range, parse_range
from common.storage.tree import Source, commit_tree, file_sha256, read_texts, source_of
from common.storage.tree import files_dir as tree_dir
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
# The running hashes, (upload id) -> (offset, hash); bounded by the uploads in flight.
_HASHES: dict[str, tuple[int, Any]] = {}
# How long a chunk waits for another writer of the same upload before a 409: long
# enough for a racing duplicate of a chunk to finish, short of any client timeout.
CHUNK_LOCK_WAIT_S = 30.0


class QuotaExceeded(PayloadTooLarge):
    code = "quota_exceeded"


class ChecksumMismatch(InvalidInput):
    code = "checksum_mismatch"


class UploadBusy(Conflict):
    code = "upload_busy"


def _quota_check(owner_key_id: UUID, adding: int, *, freed: int = 0) -> None:
    quota = get_settings().STORAGE_QUOTA_BYTES
    used = store.used_bytes(owner_key_id)
    if used - freed + adding > quota:
        raise QuotaExceeded(
            f"this key keeps {used} bytes; {adding} more would pass STORAGE_QUOTA_BYTES",
            details={"quota_bytes": quota, "used_bytes": used},
        )


def _sessions() -> Any:
    from common.stores.mongo import get_mongo

    return get_mongo()["upload_sessions"]


def _public(doc: dict[str, Any], **extra: Any) -> UploadPublic:
    url = f"/api/projects/{doc['project_id']}/uploads/{doc['_id']}"
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
        upload_url=url,
        complete_url=f"{url}/complete",
        backend=doc.get("backend", "local"),
        part_bytes=doc.get("part_bytes"),
        job_id=doc.get("job_id"),
        error_code=doc.get("error_code"),
        **extra,
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
    from common.storage.s3 import get_s3_storage

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    if archive_kind(body.filename) is None:
        safe_member_path(body.filename)
    s3 = get_s3_storage()
    if s3 is not None and body.size is None:
        # S3 cuts the file into parts at start: it needs the total.
        raise InvalidInput("an upload to S3 needs its size", details={"field": "size"})
    if body.size is not None:
        _quota_check(owner_key_id, body.size)
    upload_id = str(uuid.uuid4())
    doc: dict[str, Any] = {
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
    if s3 is not None:
        from common.storage import s3_uploads

        assert body.size is not None
        doc.update(s3_uploads.open_multipart(s3, str(project_id), upload_id, body.size))
        _sessions().insert_one(doc)
        return s3_uploads.public(s3, doc)
    part = _part_path(str(project_id), upload_id)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.touch()
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
    StoreUnavailable
        S3 could not list the upload's parts.
    """
    doc = _session(project_id, upload_id, owner_key_id)
    if doc.get("backend") == "s3":
        from common.storage import s3_uploads

        return s3_uploads.public(s3_uploads.storage_of(doc), doc)
    return _public(doc)


def complete_upload(
    *, project_id: UUID, upload_id: UUID, principal: Any, store_: ProjectStore
) -> UploadPublic:
    """Finish an upload whose bytes are all sent.

    Local uploads complete on their last byte, so this only confirms it (or says what
    is missing). An S3 upload is assembled from the parts S3 holds, then a job reads it
    once for its SHA-256 and unpacks it: the answer's state is ``verifying`` until then.
    Calling it again is harmless.

    Raises
    ------
    NotFound
        No such upload in the caller's project.
    Conflict
        Bytes or parts are missing (``offset``, ``missing_parts``), or the upload failed.
    StoreUnavailable
    """
    get_project(project_id=project_id, owner_key_id=principal.key_id, store=store_)
    doc = _session(project_id, upload_id, principal.key_id)
    if doc.get("backend") == "s3":
        from common.storage import s3_uploads

        return s3_uploads.complete(s3_uploads.storage_of(doc), doc, principal)
    if doc["state"] == "receiving":
        raise Conflict(
            f"the upload has {doc['offset']} of its {doc.get('size', '?')} bytes",
            details={"offset": doc["offset"]},
        )
    if doc["state"] == "failed":
        raise Conflict("the upload failed; start another", details={"offset": doc["offset"]})
    return _public(doc)


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
    UploadBusy
        Another chunk of the upload held the lock past ``CHUNK_LOCK_WAIT_S``.
    QuotaExceeded, ChecksumMismatch, UnsafeArchive
    """
    run = anyio.to_thread.run_sync
    await run(lambda: get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_))
    doc = await run(lambda: _session(project_id, upload_id, owner_key_id))
    if doc.get("backend") == "s3":
        raise Conflict("this upload goes to S3: PUT each part to its presigned url")
    uid = str(upload_id)
    part = _part_path(doc["project_id"], uid)
    async with _writer(part) as out:
        # Read again under the lock: a racing writer may have moved the offset on.
        doc = await run(lambda: _session(project_id, upload_id, owner_key_id))
        if out is None or doc["state"] != "receiving":
            raise Conflict(f"the upload is {doc['state']}", details={"offset": doc["offset"]})
        return await _write_chunk(doc, owner_key_id, out, part, content_range, offset, stream)
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


@asynccontextmanager
async def _writer(part: Path) -> AsyncIterator[BinaryIO | None]:
    """The part file, open for writing and locked against other writers of the upload;
    None when it is gone (the upload completed or failed).

    ``flock`` locks belong to the open file, so two requests of one process exclude each
    other as two processes do. The wait polls rather than blocking a worker thread.
    """
    try:
        handle = part.open("r+b")
    except FileNotFoundError:
        yield None
        return
    with handle:  # closing it releases the lock
        deadline = time.monotonic() + CHUNK_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UploadBusy(
                        "another chunk of this upload is being written; ask where it stands"
                    ) from None
                await anyio.sleep(0.02)
        yield handle


async def _write_chunk(
    doc: dict[str, Any],
    owner_key_id: UUID,
    out: BinaryIO,
    part: Path,
    content_range: str | None,
    offset: int | None,
    stream: AsyncIterator[bytes],
) -> UploadPublic:
    run = anyio.to_thread.run_sync
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

    uid = doc["_id"]
    hasher = await run(_hash_at, uid, part, start)
    written = 0
    error: BaseException | None = None
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
    # On disk before the offset says so: completing reads (or renames) the file.
    out.flush()
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


def unpack_limits() -> UnpackLimits:
    settings = get_settings()
    return UnpackLimits(
        max_file_bytes=settings.UNPACK_MAX_FILE_BYTES,
        max_total_bytes=settings.UNPACK_MAX_TOTAL_BYTES,
        max_ratio=settings.UNPACK_MAX_RATIO,
        max_files=settings.UNPACK_MAX_FILES,
    )


def describe_files(
    sources: dict[str, Path], owner_key_id: UUID, digest: str | None, *, freed: int = 0
) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """Sizes (checked against the quota, less ``freed``: the bytes of stored files they
    replace), SHA-256s (``digest`` for a single file already hashed) and the text files'
    contents of files about to be stored.

    Raises
    ------
    QuotaExceeded
    """
    sizes = {name: path.stat().st_size for name, path in sources.items()}
    _quota_check(owner_key_id, sum(sizes.values()), freed=freed)
    hashes = {name: digest or file_sha256(path) for name, path in sources.items()}
    return sizes, hashes, read_texts(sources, sizes)


def _complete(doc: dict[str, Any], owner_key_id: UUID, hasher: Any) -> UploadPublic:
    """Check the hash, unpack or keep the file, record its metadata. Nothing partial is
    left when any step refuses."""
    uid, pid = doc["_id"], doc["project_id"]
    part = _part_path(pid, uid)
    root = store.storage_root(pid)
    digest = hasher.hexdigest() if hasher is not None else file_sha256(part)
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
            staging.mkdir(parents=True)
            names = unpack_archive(part, kind, staging, unpack_limits())
            sources = {name: staging / name for name in names}
        # An archive is the whole project: the files it replaces free their bytes.
        freed = 0 if kind is None else store.usage_by_project([UUID(pid)]).get(UUID(pid), (0, 0))[0]
        sizes, hashes, texts = describe_files(
            sources, owner_key_id, digest if kind is None else None, freed=freed
        )
    except AppError:
        remove_tree(staging)
        _fail(doc, part)
        raise
    files_dir = tree_dir(pid)
    for name, source in sources.items():
        target = files_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    remove_tree(staging)
    part.unlink(missing_ok=True)
    _HASHES.pop(uid, None)
    return record_files(doc, owner_key_id, names, sizes, hashes, texts, digest)


def record_files(
    doc: dict[str, Any],
    owner_key_id: UUID,
    names: list[str],
    sizes: dict[str, int],
    hashes: dict[str, str],
    texts: dict[str, str],
    digest: str,
) -> UploadPublic:
    """The metadata of an upload's stored files, once they are in place (disk or S3):
    the project's files (an archive is the whole project: files it no longer has are
    removed; a single file is added), and the session marked complete."""
    uid, pid = doc["_id"], doc["project_id"]
    change = commit_tree(
        project_id=pid,
        owner_key_id=owner_key_id,
        names=names,
        sizes=sizes,
        hashes=hashes,
        texts=texts,
        source=Source(kind="upload", revision=digest, ref=doc["filename"]),
        replace=archive_kind(doc["filename"]) is not None,
    )
    done = {
        "state": "complete",
        "result_sha256": digest,
        "files": len(names),
        "version": change.version,
    }
    _sessions().update_one({"_id": uid}, {"$set": done})
    doc.update(done)
    log.info(
        "upload complete", extra={"project_id": pid, "files": len(names), "bytes": doc["offset"]}
    )
    return _public(doc)


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
    from common.environments import environment_summary
    from common.memory.project_index import index_state
    from common.stores.mongo import get_mongo

    project = get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    db = get_mongo()
    pid = str(project_id)
    cursor = (
        db["storage_files"]
        .find(
            {"project_id": pid},
            {"_id": 0, "path": 1, "size": 1, "sha256": 1, "version": 1, "kind": 1, "reason": 1},
        )
        .sort("path", 1)
    )
    files = [StoredFile.model_validate(doc) for doc in cursor]
    source, version = source_of(pid)
    return ProjectDetail(
        id=project.id,
        name=project.name,
        created_at=project.created_at,
        version=version,
        size_bytes=sum(f.size for f in files),
        files=files,
        tree=_tree(files),
        source=source,
        index=index_state(pid),
        environment=environment_summary(project_id),
    )


@dataclass(frozen=True)
class Download:
    path: Path | None  # on disk; None when the file is in S3 (then ``url``)
    size: int
    sha256: str
    span: tuple[int, int] | None  # (first, last) inclusive when a range was asked
    url: str | None = None  # a presigned S3 URL, which serves Range itself


def open_download(
    *,
    project_id: UUID,
    owner_key_id: UUID,
    path: str,
    range_header: str | None,
    store_: ProjectStore,
    revision: str | None = None,
) -> Download:
    """The stored file ``path`` (as it was at ``revision``, when given) and the part of
    it asked for.

    Raises
    ------
    NotFound
        Not the caller's project, no such file, or not at that revision.
    RangeNotSatisfiable
    """
    from common.storage.s3 import get_s3_storage
    from common.storage.tree import revision_file, revision_key, source_of
    from common.stores.mongo import get_mongo

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    s3 = get_s3_storage()
    if revision is not None and revision != source_of(project_id)[0].revision:
        kept, sha = revision_file(project_id, revision, path)
        if kept is not None:
            if s3 is not None:
                key = revision_key(str(project_id), kept, path)
                url = s3.presign_get(key, path.rsplit("/", 1)[-1])
                return Download(None, s3.head_size(key) or 0, sha, None, url)
            old = store.storage_root(project_id) / "revisions" / kept / path
            size = old.stat().st_size
            return Download(old, size, sha, parse_range(range_header, size))
    doc = get_mongo()["storage_files"].find_one({"project_id": str(project_id), "path": path})
    if s3 is not None:
        if doc is None:
            raise NotFound(f"no file {path!r} in the project")
        from common.storage.s3_uploads import file_key

        url = s3.presign_get(file_key(str(project_id), path), path.rsplit("/", 1)[-1])
        return Download(None, int(doc["size"]), str(doc["sha256"]), None, url)
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
    from common.storage.s3 import get_s3_storage

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=store_)
    delete_index(project_id=project_id)
    s3 = get_s3_storage()
    if s3 is not None:
        from common.storage.s3_uploads import delete_objects

        delete_objects(s3, str(project_id), _sessions())
    remove_tree(store.storage_root(project_id))
    # Its git workspace (a clone) goes too; the git module owns where that lives.
    from common.git.service import workspace_of

    remove_tree(workspace_of(get_settings(), project_id))
    from common.environments.build import remove_environments

    remove_environments(project_id)
    store.delete_project_documents(project_id)
    store.delete_project_rows(project_id, owner_key_id)
    log.info("project deleted", extra={"project_id": str(project_id)})
