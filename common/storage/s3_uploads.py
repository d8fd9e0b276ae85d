"""Uploads into the projects bucket (``PROJECTS_BUCKET``): S3 multipart by presigned URLs.

On AWS a request body stops at 6 MB and a request at 29 s, so an upload's bytes never
pass through a function. Starting one opens an S3 multipart upload whose part
boundaries are fixed by its size; the client PUTs each part straight to S3 at a
presigned URL. A status call lists the parts S3 holds (ListParts), so a client that
was cut off sends only the missing ones, at freshly presigned URLs. Completing
assembles the parts with the ETags S3 lists (never ones a client reports), then queues
a ``storage_finish`` job: the whole-file SHA-256 needs one read of the object, which
for gigabytes outlasts a request (the jobs worker has 15 minutes). The job streams the
object at constant memory, checks the declared hash, unpacks an archive (through a
temporary file: zip needs to seek), and records the files as a local upload does.

Object keys: ``<project>/uploads/<upload>`` while receiving, ``<project>/files/<path>``
once stored, so deleting a project is deleting its prefix.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from common.config import get_settings
from common.errors import AppError, Conflict, StoreUnavailable
from common.logs import get_logger
from common.storage.models import UploadPart, UploadPublic
from common.storage.s3 import S3Storage, get_s3_storage, part_size_for, part_spans

if TYPE_CHECKING:
    from common.jobs.context import JobContext

log = get_logger("storage.s3")

# At most this many presigned part URLs per answer (a 20 GB upload has 320 parts of
# 64 MB); a status call presigns the next ones. Keeps an answer far below Lambda's 6 MB.
PRESIGN_BATCH = 500
_PIECE = 1 << 20


def upload_key(project_id: str, upload_id: str) -> str:
    return f"{project_id}/uploads/{upload_id}"


def file_key(project_id: str, path: str) -> str:
    return f"{project_id}/files/{path}"


def storage_of(doc: dict[str, Any]) -> S3Storage:
    """The bucket an S3 upload went to.

    Raises
    ------
    StoreUnavailable
        ``PROJECTS_BUCKET`` was unset since the upload started.
    """
    s3 = get_s3_storage()
    if s3 is None:
        raise StoreUnavailable("this upload is in S3 but PROJECTS_BUCKET is not set")
    return s3


def open_multipart(s3: S3Storage, project_id: str, upload_id: str, size: int) -> dict[str, Any]:
    """Open the S3 multipart upload; returns the session fields that describe it."""
    key = upload_key(project_id, upload_id)
    return {
        "backend": "s3",
        "s3_key": key,
        "s3_upload_id": s3.create(key),
        "part_bytes": part_size_for(size, get_settings().UPLOAD_PART_BYTES),
    }


def _held(s3: S3Storage, doc: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """The parts S3 holds at their expected size, and the numbers of those missing. A part
    of the wrong size (a client that cut it elsewhere) counts as missing: sending it again
    replaces it."""
    spans = part_spans(int(doc["size"]), int(doc["part_bytes"]))
    listed = {int(p["PartNumber"]): p for p in s3.received(doc["s3_key"], doc["s3_upload_id"])}
    held: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    for number, first, last in spans:
        found = listed.get(number)
        if found is not None and int(found["Size"]) == last - first + 1:
            held[number] = found
        else:
            missing.append(number)
    return held, missing


def public(s3: S3Storage, doc: dict[str, Any]) -> UploadPublic:
    """The session as the client sees it; while receiving, with what S3 holds and fresh
    URLs for the parts still to send."""
    from common.storage.service import _public

    if doc["state"] != "receiving":
        return _public(doc)
    held, missing = _held(s3, doc)
    size, part_bytes = int(doc["size"]), int(doc["part_bytes"])
    wanted = set(missing[:PRESIGN_BATCH])
    parts = [
        UploadPart(
            part_number=number,
            first=first,
            last=last,
            url=s3.presign_part(doc["s3_key"], doc["s3_upload_id"], number),
        )
        for number, first, last in part_spans(size, part_bytes)
        if number in wanted
    ]
    offset = sum(int(p["Size"]) for p in held.values())
    return _public({**doc, "offset": offset}, received_parts=sorted(held), parts=parts)


def complete(s3: S3Storage, doc: dict[str, Any], principal: Any) -> UploadPublic:
    """Assemble the parts and queue the job that checks and stores the file.

    Raises
    ------
    Conflict
        Parts are missing (``missing_parts``), or the upload failed.
    StoreUnavailable
    """
    from common.jobs.service import submit_job
    from common.storage.service import _sessions

    if doc["state"] == "failed":
        raise Conflict("the upload failed; start another", details={"offset": doc["offset"]})
    if doc["state"] != "receiving":
        return _public_of(doc)  # verifying or complete: asking again changes nothing
    size = int(doc["size"])
    if s3.head_size(doc["s3_key"]) != size:
        # Not assembled yet (an earlier call may have assembled it and failed after).
        held, missing = _held(s3, doc)
        if missing:
            raise Conflict(
                f"S3 holds {len(held)} of the upload's {len(held) + len(missing)} parts",
                details={
                    "missing_parts": missing,
                    "offset": sum(int(p["Size"]) for p in held.values()),
                },
            )
        s3.complete(doc["s3_key"], doc["s3_upload_id"], size)
    accepted = submit_job(
        kind="storage_finish",
        input={"project_id": doc["project_id"], "upload_id": doc["_id"]},
        principal=principal,
        project_id=UUID(doc["project_id"]),
    )
    update = {"state": "verifying", "offset": size, "job_id": str(accepted.job_id)}
    _sessions().update_one({"_id": doc["_id"], "state": "receiving"}, {"$set": update})
    doc.update(update)
    log.info("s3 upload assembled", extra={"upload_id": doc["_id"], "bytes": size})
    return _public_of(doc)


def _public_of(doc: dict[str, Any]) -> UploadPublic:
    from common.storage.service import _public

    return _public(doc)


def run_finish_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The ``storage_finish`` job: see :func:`finish`."""
    from common.storage.service import _sessions

    doc = _sessions().find_one({"_id": str(input["upload_id"])})
    if doc is None or doc.get("backend") != "s3":
        raise Conflict(f"no S3 upload {input['upload_id']}")
    return finish(storage_of(doc), doc).model_dump(mode="json")


def finish(s3: S3Storage, doc: dict[str, Any]) -> UploadPublic:
    """Read the assembled object once for its SHA-256 (and, for an archive, into a
    temporary file to unpack), check it, store the files and record them. Nothing
    partial is kept when a check refuses; run twice, it does the work once.

    Raises
    ------
    ChecksumMismatch, UnsafeArchive, QuotaExceeded
        The upload is marked failed and its object deleted.
    StoreUnavailable
        S3 or a store failed: the job may run again.
    """
    from common.storage.service import ChecksumMismatch, _public, _quota_check, record_files
    from common.storage.tree import TEXT_FILE_MAX_BYTES, text_of
    from common.storage.unpack import archive_kind, safe_member_path

    if doc["state"] != "verifying":
        return _public(doc)
    pid, owner = doc["project_id"], UUID(doc["owner_key_id"])
    kind = archive_kind(doc["filename"])
    work = Path(tempfile.mkdtemp(prefix="upload-"))
    try:
        hasher = hashlib.sha256()
        small = bytearray()  # a single small file's bytes, for the code actions' text
        keep_small = kind is None and int(doc["size"]) <= TEXT_FILE_MAX_BYTES
        archive = work / "archive"
        # A plain file is only hashed here (S3 copies it server side); an archive is kept.
        out = archive.open("wb") if kind is not None else None
        try:
            for piece in s3.iter_object(doc["s3_key"], _PIECE):
                hasher.update(piece)
                if out is not None:
                    out.write(piece)
                elif keep_small:
                    small += piece
        finally:
            if out is not None:
                out.close()
        digest = hasher.hexdigest()
        try:
            if doc.get("sha256") and doc["sha256"] != digest:
                raise ChecksumMismatch(
                    "the bytes received do not have the declared sha256",
                    details={"sha256": digest},
                )
            if kind is None:
                name = safe_member_path(doc["filename"])
                names, sizes, hashes = [name], {name: int(doc["size"])}, {name: digest}
                _quota_check(owner, int(doc["size"]))
                text = text_of(bytes(small)) if keep_small else None
                texts = {name: text} if text is not None else {}
            else:
                names, sizes, hashes, texts = _unpack(archive, kind, work / "files", owner)
        except AppError as exc:
            _fail(s3, doc, exc)
            raise
        if kind is None:
            s3.copy(doc["s3_key"], file_key(pid, names[0]))
        else:
            for name in names:
                s3.put_file(work / "files" / name, file_key(pid, name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = record_files(doc, owner, names, sizes, hashes, texts, digest)
    # Last: until the files are recorded, a retried job still finds the object.
    s3.delete(doc["s3_key"])
    return done


def _unpack(
    archive: Path, kind: str, into: Path, owner: UUID
) -> tuple[list[str], dict[str, int], dict[str, str], dict[str, str]]:
    from common.storage.service import describe_files, unpack_limits
    from common.storage.unpack import unpack_archive

    into.mkdir()
    names = unpack_archive(archive, kind, into, unpack_limits())
    archive.unlink()  # before the files are read: the disk holds one copy at a time
    sizes, hashes, texts = describe_files({n: into / n for n in names}, owner, None)
    return names, sizes, hashes, texts


def _fail(s3: S3Storage, doc: dict[str, Any], exc: AppError) -> None:
    from common.storage.service import _sessions

    try:
        s3.delete(doc["s3_key"])
    except StoreUnavailable:
        pass  # the project's prefix goes with it; the upload is failed either way
    failed = {"state": "failed", "error_code": exc.code}
    _sessions().update_one({"_id": doc["_id"]}, {"$set": failed})
    doc.update(failed)
    log.info("s3 upload refused", extra={"upload_id": doc["_id"], "code": exc.code})


def delete_objects(s3: S3Storage, project_id: str, sessions: Any) -> None:
    """Abort the project's unfinished multipart uploads and delete its objects."""
    for doc in sessions.find({"project_id": project_id, "backend": "s3", "state": "receiving"}):
        try:
            s3.abort(doc["s3_key"], doc["s3_upload_id"])
        except StoreUnavailable:
            pass  # already completed or aborted; the bucket's lifecycle rule is the backstop
    s3.delete_prefix(f"{project_id}/")
