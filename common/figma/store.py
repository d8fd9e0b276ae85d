"""Figma documents in MongoDB: the raw JSON in GridFS, a metadata document beside it.

A Figma file can be tens of MB, past MongoDB's 16 MB document limit, so the bytes
go to GridFS (bucket ``figma``) as they arrive, in 255 KB chunks, and are never
held whole. ``figma_documents`` keeps what is known about each (owner key, file
key and name, version, sizes, token counts, the GridFS id) and, for a job, the
analysis the job finishes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.errors import NotFound, StoreUnavailable

if TYPE_CHECKING:
    from pymongo.database import Database

BUCKET = "figma"
COLLECTION = "figma_documents"
MAX_ID_CHARS = 64
# GridFS's default chunk size: documents well under 16 MB, few round trips.
CHUNK_BYTES = 255 * 1024
_NOT_STORED = "MongoDB did not take the Figma file (MONGODB_URL)"
# Databases whose GridFS indexes this process has made sure of.
_INDEXED: set[str] = set()


class DocumentSink(Protocol):
    """Where the raw bytes go as they arrive."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> str:
        """Finish; the stored file's id."""
        ...

    def abort(self) -> None:
        """Drop whatever was written."""
        ...


class GridFsSink:
    """Streams bytes into one GridFS file, a 255 KB chunk document at a time.

    Written to the GridFS layout directly (``figma.chunks`` then ``figma.files``)
    rather than through pymongo's ``GridIn``, which buffers up to 48 MB of chunks
    before its first insert: the whole of a typical Figma file would sit in memory
    and then be encoded again. Here at most one chunk is held. Nothing is visible to
    readers until :meth:`close` writes the files entry.
    """

    def __init__(self, db: Database[dict[str, Any]], *, filename: str, key_id: UUID) -> None:
        from bson import ObjectId

        self._db = db
        self._id = ObjectId()
        self._filename = filename
        self._key_id = str(key_id)
        self._buffer = bytearray()
        self._chunks = 0
        self._length = 0
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        from pymongo.errors import PyMongoError

        if self._db.name in _INDEXED:
            return
        try:
            # The indexes GridFSBucket would create on its first write.
            self._db[f"{BUCKET}.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
            self._db[f"{BUCKET}.files"].create_index([("filename", 1), ("uploadDate", 1)])
        except PyMongoError as exc:
            raise StoreUnavailable(_NOT_STORED) from exc
        _INDEXED.add(self._db.name)

    def _put(self, piece: bytes) -> None:
        from bson import Binary
        from pymongo.errors import PyMongoError

        try:
            self._db[f"{BUCKET}.chunks"].insert_one(
                {"files_id": self._id, "n": self._chunks, "data": Binary(piece)}
            )
        except PyMongoError as exc:
            raise StoreUnavailable(_NOT_STORED) from exc
        self._chunks += 1
        self._length += len(piece)

    def write(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= CHUNK_BYTES:
            self._put(bytes(buffer[:CHUNK_BYTES]))
            del buffer[:CHUNK_BYTES]

    def close(self) -> str:
        from pymongo.errors import PyMongoError

        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        try:
            self._db[f"{BUCKET}.files"].insert_one(
                {
                    "_id": self._id,
                    "length": self._length,
                    "chunkSize": CHUNK_BYTES,
                    "uploadDate": datetime.now(UTC),
                    "filename": self._filename,
                    "metadata": {"key_id": self._key_id, "content_type": "application/json"},
                }
            )
        except PyMongoError as exc:
            raise StoreUnavailable(_NOT_STORED) from exc
        return str(self._id)

    def abort(self) -> None:
        from pymongo.errors import PyMongoError

        self._buffer.clear()
        try:
            self._db[f"{BUCKET}.chunks"].delete_many({"files_id": self._id})
        except PyMongoError:
            # Orphaned chunks (no files entry points at them) are all that is left; the
            # request already failed for another reason, which is what to report.
            pass


def gridfs_sink(*, filename: str, key_id: UUID) -> GridFsSink:
    from common.stores.mongo import get_mongo

    return GridFsSink(get_mongo(), filename=filename, key_id=key_id)


def delete_gridfs(gridfs_id: str) -> None:
    """Remove a stored file (best effort: it is cleanup after another failure)."""
    from bson import ObjectId
    from bson.errors import InvalidId
    from gridfs import GridFSBucket
    from gridfs.errors import NoFile
    from pymongo.errors import PyMongoError

    from common.stores.mongo import get_mongo

    try:
        GridFSBucket(get_mongo(), bucket_name=BUCKET).delete(ObjectId(gridfs_id))
    except (InvalidId, NoFile, PyMongoError, StoreUnavailable):
        pass


def new_document_id() -> str:
    return str(uuid.uuid4())


def save_document(document: dict[str, Any], *, key_id: UUID) -> str:
    """Store a ``figma_documents`` entry owned by ``key_id``; its id.

    Raises
    ------
    StoreUnavailable
        MongoDB did not take it.
    """
    from pymongo.errors import PyMongoError

    from common.stores.mongo import get_mongo

    entry = {
        "_id": document.get("id") or new_document_id(),
        **{k: v for k, v in document.items() if k != "id"},
        "key_id": str(key_id),
        "created_at": datetime.now(UTC),
    }
    try:
        get_mongo()[COLLECTION].insert_one(entry)
    except PyMongoError as exc:
        raise StoreUnavailable("the Figma document was not stored (MONGODB_URL)") from exc
    return str(entry["_id"])


def load_document(document_id: str, *, key_id: UUID) -> dict[str, Any]:
    """The ``figma_documents`` entry ``document_id``, when ``key_id`` stored it.

    Raises
    ------
    NotFound
        No such document, or another key's.
    StoreUnavailable
        MongoDB did not answer.
    """
    from pymongo.errors import PyMongoError

    from common.stores.mongo import get_mongo

    missing = NotFound(f"Figma document {document_id[:MAX_ID_CHARS]} not found")
    if not document_id or len(document_id) > MAX_ID_CHARS:
        raise missing
    try:
        found = get_mongo()[COLLECTION].find_one({"_id": document_id, "key_id": str(key_id)})
    except PyMongoError as exc:
        raise StoreUnavailable("Figma documents cannot be read (MONGODB_URL)") from exc
    if found is None:
        raise missing
    return found


def document_bytes(gridfs_id: str, *, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The stored JSON of a document, in chunks (for re-reading it without loading it whole).

    Raises
    ------
    NotFound
        No such GridFS file.
    StoreUnavailable
        MongoDB did not answer.
    """
    from bson import ObjectId
    from bson.errors import InvalidId
    from gridfs import GridFSBucket
    from gridfs.errors import NoFile
    from pymongo.errors import PyMongoError

    from common.stores.mongo import get_mongo

    try:
        stream = GridFSBucket(get_mongo(), bucket_name=BUCKET).open_download_stream(
            ObjectId(gridfs_id)
        )
    except (InvalidId, NoFile) as exc:
        raise NotFound(f"stored Figma file {gridfs_id[:MAX_ID_CHARS]} not found") from exc
    except PyMongoError as exc:
        raise StoreUnavailable("Figma documents cannot be read (MONGODB_URL)") from exc
    with stream:
        while True:
            try:
                chunk = stream.read(chunk_bytes)
            except PyMongoError as exc:
                raise StoreUnavailable("Figma documents cannot be read (MONGODB_URL)") from exc
            if not chunk:
                return
            yield chunk
