"""A project's stored files: one truth, whatever brought them.

An upload (a file or an archive), a git sync (the branch's tracked files) and
``files`` in a body all end here, in :func:`commit_tree`: the files are on disk
under ``DATA_DIR/storage/<project>/files`` (in S3 with ``PROJECTS_BUCKET``), each
has a document in ``storage_files`` (size, SHA-256, the version that last changed
it, and whether it is read as code), the text ones also in ``project_files`` (what
the index and the code actions read), and ``project_meta`` says where the files
came from (``source``: kind, revision, ref) and when they last changed. A change
that moved anything queues the project's index job.

What is not read as code is still stored, listed and downloadable: a binary file
(a NUL byte, or not UTF-8) and a file over :data:`TEXT_FILE_MAX_BYTES`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from common.logs import get_logger
from common.storage import store

log = get_logger("storage.tree")

# Text files up to this size are read as code (indexed, given to the code actions).
TEXT_FILE_MAX_BYTES = 2 * 1024 * 1024
SourceKind = Literal["upload", "git", "files"]
FileKind = Literal["text", "binary", "oversized"]


class Source(BaseModel):
    """Where a project's files came from last."""

    kind: SourceKind | None = Field(None, description="upload, git or files (a body).")
    revision: str | None = Field(
        None, description="git: the commit; upload: the file's SHA-256; files: their digest."
    )
    ref: str | None = Field(None, description="git: the branch; upload: the file name.")
    changed_at: datetime | None = Field(None, description="When the files last changed.")


class TreeChange(BaseModel):
    """What one commit of files did."""

    version: int = Field(description="The project's files version after it.")
    revision: str
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int

    @property
    def moved(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def files_dir(project_id: UUID | str) -> Path:
    """The folder holding the project's tree on this server's disk."""
    return store.storage_root(project_id) / "files"


def text_of(data: bytes) -> str | None:
    """``data`` as text, or None for a binary file (a NUL byte, or not UTF-8)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def file_kind(size: int, text: str | None) -> tuple[FileKind, str | None]:
    """How a file is treated, and why it is not read as code when it is not."""
    if size > TEXT_FILE_MAX_BYTES:
        mb = TEXT_FILE_MAX_BYTES / (1024 * 1024)
        return "oversized", f"{size / (1024 * 1024):.1f} MB is over the {mb:g} MB read as code"
    if text is None:
        return "binary", "binary (a NUL byte or not UTF-8): stored, not read as code"
    return "text", None


def read_texts(sources: Mapping[str, Path], sizes: Mapping[str, int]) -> dict[str, str]:
    """The text files among ``sources`` that are small enough to be read as code."""
    texts: dict[str, str] = {}
    for name, path in sources.items():
        if sizes[name] > TEXT_FILE_MAX_BYTES:
            continue
        text = text_of(path.read_bytes())
        if text is not None:
            texts[name] = text
    return texts


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(1 << 20):
            hasher.update(piece)
    return hasher.hexdigest()


def texts_digest(files: Mapping[str, str]) -> str:
    """One SHA-256 for a set of texts: the revision of ``files`` given in a body."""
    hasher = hashlib.sha256()
    for path in sorted(files):
        hasher.update(path.encode() + b"\0")
        hasher.update(hashlib.sha256(files[path].encode()).digest())
    return hasher.hexdigest()


def files_digest(hashes: Mapping[str, str]) -> str:
    """One SHA-256 of a tree's paths and file hashes: the same tree, the same digest."""
    digest = hashlib.sha256()
    for path in sorted(hashes):
        digest.update(f"{path}\0{hashes[path]}\n".encode())
    return digest.hexdigest()


def stored_hashes(project_id: UUID | str) -> dict[str, str]:
    """Every stored file's path -> SHA-256."""
    from common.stores.mongo import get_mongo

    cursor = get_mongo()["storage_files"].find(
        {"project_id": str(project_id)}, {"_id": 0, "path": 1, "sha256": 1}
    )
    return {doc["path"]: doc["sha256"] for doc in cursor}


# Copies of an S3-stored tree kept on this machine per project: the current one and
# the one before, which an action that started earlier may still be running on.
LOCAL_TREE_COPIES = 2


def local_tree(project_id: UUID | str) -> Path:
    """The project's whole tree on this machine's disk, where its tests and installers run.

    On disk (the local server) that is the stored folder itself. With the files in S3
    (a Lambda worker), a copy under ``<storage root>/trees/<digest>`` is made from the
    objects, one at a time at constant memory, the first time a version is needed,
    and reused until the files change; it appears whole or not at all.

    Raises
    ------
    StoreUnavailable
        MongoDB or S3 failed (nothing half-made is left).
    """
    import shutil
    import tempfile

    from common.storage.s3 import get_s3_storage

    s3 = get_s3_storage()
    if s3 is None:
        return files_dir(project_id)
    from common.storage.s3_uploads import file_key

    pid = str(project_id)
    hashes = stored_hashes(pid)
    base = store.storage_root(pid) / "trees"
    target = base / files_digest(hashes)[:24]
    if target.is_dir():
        return target
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".making-", dir=base))
    try:
        for path in sorted(hashes):
            out = work / path
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("wb") as sink:
                for piece in s3.iter_object(file_key(pid, path)):
                    sink.write(piece)
        try:
            work.rename(target)
        except OSError:
            if not target.is_dir():  # not another worker's copy of the same version
                raise
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    copies = sorted(
        (c for c in base.iterdir() if not c.name.startswith(".")),
        key=lambda c: c.stat().st_mtime,
        reverse=True,
    )
    for old in copies[LOCAL_TREE_COPIES:]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def commit_tree(
    *,
    project_id: UUID | str,
    owner_key_id: UUID,
    names: list[str],
    sizes: Mapping[str, int],
    hashes: Mapping[str, str],
    texts: Mapping[str, str],
    source: Source,
    replace: bool,
    queue_index: bool = True,
) -> TreeChange:
    """Record files already in place (disk or S3) as the project's files.

    Parameters
    ----------
    names, sizes, hashes, texts:
        The files, their sizes and SHA-256s, and the text of those read as code.
    source:
        Where they came from (its ``changed_at`` is set here when anything changed).
    replace:
        The files are the whole project (an archive, a branch, a body): stored files
        missing from ``names`` are removed, from the disk too. False: added to and
        over the stored ones (a single uploaded file).
    queue_index:
        Queue the index job when anything changed (the body path indexes inline).

    Returns
    -------
    TreeChange

    Raises
    ------
    StoreUnavailable
        MongoDB failed.
    """
    from pymongo import DeleteOne, ReplaceOne, ReturnDocument, UpdateOne

    from common.stores.mongo import get_mongo

    pid = str(project_id)
    db = get_mongo()
    existing = stored_hashes(pid)
    added = sorted(n for n in names if n not in existing)
    changed = sorted(n for n in names if n in existing and existing[n] != hashes[n])
    wanted = set(names)
    removed = sorted(p for p in existing if p not in wanted) if replace else []
    now = datetime.now(UTC)
    moved = bool(added or changed or removed)
    meta = db["project_meta"].find_one_and_update(
        {"project_id": pid},
        {"$inc": {"storage_version": 1 if moved or not existing else 0}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    version = int((meta or {}).get("storage_version", 1)) or 1
    writes: list[Any] = []
    texts_writes: list[Any] = []
    for name in (*added, *changed):
        text = texts.get(name)
        kind, reason = file_kind(sizes[name], text)
        writes.append(
            UpdateOne(
                {"project_id": pid, "path": name},
                {
                    "$set": {
                        "owner_key_id": str(owner_key_id),
                        "size": sizes[name],
                        "sha256": hashes[name],
                        "version": version,
                        "kind": kind,
                        "reason": reason,
                    }
                },
                upsert=True,
            )
        )
        if text is not None and kind == "text":
            texts_writes.append(
                ReplaceOne(
                    {"project_id": pid, "path": name},
                    {
                        "project_id": pid,
                        "path": name,
                        "content": text,
                        "sha256": hashlib.sha256(text.encode()).hexdigest(),
                    },
                    upsert=True,
                )
            )
        else:
            # A file that was text and is binary now is no longer read as code.
            texts_writes.append(DeleteOne({"project_id": pid, "path": name}))
    for name in removed:
        writes.append(DeleteOne({"project_id": pid, "path": name}))
        texts_writes.append(DeleteOne({"project_id": pid, "path": name}))
    if writes:
        db["storage_files"].bulk_write(writes, ordered=False)
    if texts_writes:
        db["project_files"].bulk_write(texts_writes, ordered=False)
    if removed:
        _remove_files(pid, removed)
    recorded = source.model_copy(
        update={"changed_at": now if moved else (meta or {}).get("source", {}).get("changed_at")}
    )
    db["project_meta"].update_one(
        {"project_id": pid}, {"$set": {"source": recorded.model_dump(mode="python")}}
    )
    if moved:
        from common.stores.projects_store import get_project_store

        get_project_store().touch_project(UUID(pid))
    change = TreeChange(
        version=version,
        revision=source.revision or "",
        added=added,
        changed=changed,
        removed=removed,
        unchanged=len(names) - len(added) - len(changed),
    )
    log.info(
        "project files committed",
        extra={
            "project_id": pid,
            "source": source.kind,
            "added": len(added),
            "changed": len(changed),
            "removed": len(removed),
        },
    )
    if queue_index and moved:
        from common.memory.project_index import queue_index_job

        queue_index_job(project_id=UUID(pid), key_id=owner_key_id, revision=change.revision)
    if queue_index and any(_is_manifest(p) for p in (*added, *changed, *removed)):
        _queue_environment(UUID(pid), owner_key_id)
    return change


_MANIFESTS = re.compile(
    r"(^|/)(requirements[^/]*\.txt|pyproject\.toml|setup\.cfg|package(-lock)?\.json"
    r"|npm-shrinkwrap\.json|poetry\.lock|uv\.lock|Pipfile\.lock)$"
)


def _is_manifest(path: str) -> bool:
    return _MANIFESTS.search(path) is not None


def _queue_environment(project_id: UUID, owner_key_id: UUID) -> None:
    """Build the project's dependencies ahead of the first action that needs them."""
    from common.jobs import submit_job
    from common.jobs.service import KeyRef
    from common.storage.s3 import get_s3_storage

    if get_s3_storage() is not None:
        return  # the tree is in S3: the action's worker builds it on its copy (local_tree)
    submit_job(
        kind="project_env",
        input={"project_id": str(project_id), "tree": str(files_dir(project_id)), "force": False},
        principal=KeyRef(owner_key_id),
        project_id=project_id,
    )


def _remove_files(project_id: str, paths: list[str]) -> None:
    from common.storage.s3 import get_s3_storage

    s3 = get_s3_storage()
    if s3 is not None:
        from common.storage.s3_uploads import file_key

        for path in paths:
            s3.delete(file_key(project_id, path))
        return
    root = files_dir(project_id)
    for path in paths:
        target = root / path
        target.unlink(missing_ok=True)
        # Empty folders left behind go too, up to the tree's root.
        parent = target.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def write_texts(project_id: UUID | str, files: Mapping[str, str]) -> dict[str, int]:
    """Write texts (files given in a body) into the project's tree; their sizes."""
    from common.storage.s3 import get_s3_storage

    s3 = get_s3_storage()
    sizes: dict[str, int] = {}
    root = files_dir(project_id)
    for path, text in files.items():
        data = text.encode()
        sizes[path] = len(data)
        if s3 is not None:
            import tempfile

            from common.storage.s3_uploads import file_key

            with tempfile.NamedTemporaryFile() as tmp:
                tmp.write(data)
                tmp.flush()
                s3.put_file(Path(tmp.name), file_key(str(project_id), path))
            continue
        _place(root / path, data=data)
    return sizes


def store_texts(
    *, project_id: UUID, owner_key_id: UUID, files: Mapping[str, str], queue_index: bool
) -> TreeChange:
    """``files`` (path -> text, the whole project) as the project's stored files."""
    sizes = write_texts(project_id, files)
    hashes = {path: hashlib.sha256(text.encode()).hexdigest() for path, text in files.items()}
    texts = {p: t for p, t in files.items() if sizes[p] <= TEXT_FILE_MAX_BYTES and "\0" not in t}
    return commit_tree(
        project_id=project_id,
        owner_key_id=owner_key_id,
        names=sorted(files),
        sizes=sizes,
        hashes=hashes,
        texts=texts,
        source=Source(kind="files", revision=texts_digest(files)),
        replace=True,
        queue_index=queue_index,
    )


def apply_change(
    *,
    project_id: UUID | str,
    owner_key_id: UUID,
    files: Mapping[str, str],
    deleted: Sequence[str] = (),
) -> TreeChange:
    """A change to some of the stored files (the others kept) as a new revision.

    What the change replaces or deletes is kept first, as it was, under the old
    revision (``revisions/<revision>/``, listed in ``project_meta.revisions``), so
    :func:`revision_file` can still serve the files of any earlier revision.

    Raises
    ------
    InvalidInput
        ``deleted`` names a file that is not stored.
    StoreUnavailable
        MongoDB (or S3) failed.
    """
    from common.errors import InvalidInput
    from common.stores.mongo import get_mongo

    pid = str(project_id)
    before, _ = source_of(pid)
    existing = stored_hashes(pid)
    missing = [p for p in deleted if p not in existing]
    if missing:
        raise InvalidInput(f"the change deletes files that are not stored: {missing[:5]}")
    touched = sorted(p for p in {*files, *deleted} if p in existing)
    hashes = {**existing, **{p: hashlib.sha256(t.encode()).hexdigest() for p, t in files.items()}}
    for path in deleted:
        hashes.pop(path, None)
    old, new = before.revision or "initial", files_digest(hashes)
    kept = _keep_revision(pid, old, touched)
    entry = {
        "revision": old,
        "to": new,
        "kept_at": datetime.now(UTC),
        "files": kept,
        "created": sorted(p for p in files if p not in existing),
    }
    get_mongo()["project_meta"].update_one({"project_id": pid}, {"$push": {"revisions": entry}})
    sizes = write_texts(project_id, files)
    texts = {p: t for p, t in files.items() if sizes[p] <= TEXT_FILE_MAX_BYTES and "\0" not in t}
    return commit_tree(
        project_id=project_id,
        owner_key_id=owner_key_id,
        names=sorted(hashes),
        sizes=sizes,
        hashes=hashes,
        texts=texts,
        source=Source(kind=before.kind, revision=new, ref=before.ref),
        replace=True,
    )


def _keep_revision(pid: str, revision: str, paths: Sequence[str]) -> dict[str, str]:
    """Copy ``paths`` as they are now under ``revisions/<revision>/``; path -> SHA-256."""
    import shutil

    from common.storage.s3 import get_s3_storage
    from common.stores.mongo import get_mongo

    s3 = get_s3_storage()
    docs = get_mongo()["storage_files"].find(
        {"project_id": pid, "path": {"$in": list(paths)}}, {"_id": 0, "path": 1, "sha256": 1}
    )
    kept = {d["path"]: d["sha256"] for d in docs}
    for path in kept:
        if s3 is not None:
            from common.storage.s3_uploads import file_key

            s3.copy(file_key(pid, path), revision_key(pid, revision, path))
            continue
        target = store.storage_root(pid) / "revisions" / revision / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files_dir(pid) / path, target)
    return kept


def revision_key(pid: str, revision: str, path: str) -> str:
    """The S3 key of a file kept for an earlier revision."""
    return f"{pid}/revisions/{revision}/{path}"


def revision_file(project_id: UUID | str, revision: str, path: str) -> tuple[str | None, str]:
    """Where ``path`` as it was at ``revision`` is: the earlier revision whose kept copy
    holds it (or None: the current file is it), and its SHA-256.

    A kept revision holds only the files the change after it replaced; a file a later
    change replaced is in that later revision's copy, and one no change replaced
    since is the current file, as long as nothing but changes moved the files since
    (an upload or a sync in between breaks the chain: not found, never a wrong file).

    Raises
    ------
    NotFound
        No such revision, or the file did not exist then (or cannot be told).
    """
    from common.errors import NotFound
    from common.stores.mongo import get_mongo

    pid = str(project_id)
    meta = get_mongo()["project_meta"].find_one({"project_id": pid}) or {}
    history = list(meta.get("revisions") or [])
    current = str((meta.get("source") or {}).get("revision") or "")
    start = next((i for i, r in enumerate(history) if r.get("revision") == revision), None)
    if start is None:
        raise NotFound(f"no earlier revision {revision!r} of the project's files")
    for i in range(start, len(history)):
        entry = history[i]
        kept = entry.get("files") or {}
        if path in kept:
            return str(entry["revision"]), str(kept[path])
        if path in (entry.get("created") or []):
            break
        following = history[i + 1]["revision"] if i + 1 < len(history) else current
        if entry.get("to") != following:
            break
    else:
        now = stored_hashes(pid)
        if path in now:
            return None, now[path]
    raise NotFound(f"no file {path!r} at revision {revision!r}")


def source_of(project_id: UUID | str) -> tuple[Source, int]:
    """The project's source and files version."""
    from common.stores.mongo import get_mongo

    meta = get_mongo()["project_meta"].find_one({"project_id": str(project_id)}) or {}
    return Source.model_validate(meta.get("source") or {}), int(meta.get("storage_version", 0))


def store_directory(
    *,
    project_id: UUID | str,
    owner_key_id: UUID,
    root: Path,
    names: list[str],
    source: Source,
    unchanged: set[str] | None = None,
) -> TreeChange:
    """The files ``names`` under ``root`` (a git work tree) as the whole project.

    Parameters
    ----------
    unchanged:
        Paths known to be as stored (git said so): neither hashed nor copied again.

    Raises
    ------
    QuotaExceeded
        The tree would pass the key's quota (nothing is written).
    """

    from common.storage.service import _quota_check

    pid = str(project_id)
    stored = _stored_sizes(pid)
    unchanged = {n for n in (unchanged or set()) if n in stored}
    sizes: dict[str, int] = {}
    hashes: dict[str, str] = {}
    for name in names:
        if name in unchanged:
            hashes[name], sizes[name] = stored[name]
        else:
            sizes[name] = (root / name).stat().st_size
            hashes[name] = file_sha256(root / name)
    fresh = [n for n in names if n not in stored or stored[n][0] != hashes[n]]
    _quota_check(owner_key_id, sum(sizes.values()), freed=sum(size for _, size in stored.values()))
    from common.storage.s3 import get_s3_storage

    s3 = get_s3_storage()
    target_root = files_dir(pid)
    for name in fresh:
        if s3 is not None:
            from common.storage.s3_uploads import file_key

            s3.put_file(root / name, file_key(pid, name))
            continue
        _place(target_root / name, source=root / name)
    texts = read_texts({n: root / n for n in fresh}, sizes)
    return commit_tree(
        project_id=pid,
        owner_key_id=owner_key_id,
        names=names,
        sizes=sizes,
        hashes=hashes,
        texts=texts,
        source=source,
        replace=True,
    )


def _stored_sizes(project_id: str) -> dict[str, tuple[str, int]]:
    from common.stores.mongo import get_mongo

    cursor = get_mongo()["storage_files"].find(
        {"project_id": project_id}, {"_id": 0, "path": 1, "sha256": 1, "size": 1}
    )
    return {doc["path"]: (doc["sha256"], int(doc["size"])) for doc in cursor}


def _place(target: Path, *, data: bytes | None = None, source: Path | None = None) -> None:
    """Write ``data`` (or a copy of ``source``) to ``target`` through a partial file
    beside it, so a reader never sees half a file."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    if source is not None:
        shutil.copyfile(source, partial)
    else:
        partial.write_bytes(data or b"")
    os.replace(partial, target)
