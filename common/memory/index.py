"""A project's code in Qdrant: incremental indexing and semantic search.

One collection per project (``project_<id>``, after ``QDRANT_COLLECTION_PREFIX``).
Each chunk is a point whose id is derived from the project, the path, the symbol,
the text's SHA-256 and its occurrence among equal chunks of the file: indexing
the same files again finds every id already there and embeds nothing; a changed
function gets a new id (embedded) and its old point is deleted; a chunk that only
moved (lines added above it) keeps its vector and has its line numbers updated.

The collection also holds one metadata point naming the embedder and vector size
that made it. Vectors of two embedders are not comparable, so indexing with
another embedder rebuilds the collection (``IndexReport.recreated``), and
searching with another embedder is refused (409) until the project is indexed
again. A point, not Qdrant's collection metadata, so that any server version works.

qdrant_client is imported on first use (see ``common.stores.qdrant_store``).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from common.errors import AppError, Conflict, StoreUnavailable
from common.logs import get_logger
from common.memory.chunking import Chunk, chunk_file
from common.memory.embedders import Embedder, get_embedder
from common.memory.models import Hit, IndexReport

log = get_logger("memory.index")

# Schema of the points; a change rebuilds every collection on its next indexing.
SCHEMA = 2
_NAMESPACE = uuid.UUID("6f1d0c1e-6a55-4d0e-9a39-3f1a3c7e0b42")
# Chunks embedded (and upserted) per call: bounds one request to the provider and to Qdrant.
EMBED_BATCH = 64
UPSERT_BATCH = 256
SCROLL_PAGE = 1024
HIT_TEXT_CHARS = 1000


def collection_for(project_id: UUID | str) -> str:
    """The project's collection name."""
    from common.stores.qdrant_store import collection_name

    return collection_name(f"project_{project_id}")


def meta_point_id(project_id: UUID | str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{project_id}\0meta"))


def chunk_point_id(project_id: UUID | str, chunk: Chunk, occurrence: int) -> str:
    """The point id of ``chunk``: the same for the same content at the same path."""
    key = f"{project_id}\0{chunk.path}\0{chunk.symbol or ''}\0{chunk.sha256}\0{occurrence}"
    return str(uuid.uuid5(_NAMESPACE, key))


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its path and symbol say what the code is part of."""
    head = f"{chunk.path} {chunk.symbol}" if chunk.symbol else chunk.path
    return f"{head}\n{chunk.text}"


def _qdrant() -> Any:
    from common.stores.qdrant_store import get_qdrant

    return get_qdrant()


@dataclass(frozen=True)
class _Meta:
    embedder: str
    dim: int
    schema: int
    # The number of the last run that completed (searches see its points and older
    # ones), and what its files were.
    completed_seq: int = 0
    revision: str | None = None
    indexed_at: float | None = None
    # Files that give no chunk (empty, blank) by path -> hash: no point remembers them.
    empty_files: dict[str, str] = field(default_factory=dict)
    # The completed run's files (a digest of paths and hashes) and chunks; ``clean``
    # while the collection holds exactly that run's points (a run that started writing
    # and did not complete clears it). Together they let an unchanged tree be answered
    # from this point alone, without reading every point's payload.
    files_digest: str | None = None
    chunks_total: int = 0
    clean: bool = False

    def made_by(self, embedder: Embedder) -> bool:
        return (self.embedder, self.dim, self.schema) == (embedder.name, embedder.dim, SCHEMA)


@contextmanager
def _qdrant_errors(doing: str) -> Iterator[None]:
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except AppError:
        raise
    except (ResponseHandlingException, UnexpectedResponse, ConnectionError, OSError) as exc:
        raise StoreUnavailable(f"Qdrant failed while {doing} (QDRANT_URL)") from exc


def _read_meta(client: Any, collection: str, project_id: UUID | str) -> _Meta | None:
    records = client.retrieve(collection, ids=[meta_point_id(project_id)], with_payload=True)
    if not records:
        return None
    payload = records[0].payload or {}
    try:
        return _Meta(
            str(payload["embedder"]),
            int(payload["dim"]),
            int(payload["schema"]),
            int(payload.get("completed_seq", 0)),
            payload.get("revision"),
            payload.get("indexed_at"),
            dict(payload.get("empty_files") or {}),
            payload.get("files_digest"),
            int(payload.get("chunks_total", 0)),
            payload.get("clean") is True,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _meta_payload(embedder: Embedder, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "meta",
        "embedder": embedder.name,
        "dim": embedder.dim,
        "schema": SCHEMA,
        **extra,
    }


def _write_meta(
    client: Any,
    collection: str,
    project_id: UUID | str,
    embedder: Embedder,
    *,
    completed_seq: int,
    revision: str | None,
    empty_files: dict[str, str],
    files_digest: str,
    chunks_total: int,
) -> None:
    client.set_payload(
        collection,
        payload=_meta_payload(
            embedder,
            completed_seq=completed_seq,
            revision=revision,
            indexed_at=time.time(),
            empty_files=empty_files,
            files_digest=files_digest,
            chunks_total=chunks_total,
            clean=True,
        ),
        points=[meta_point_id(project_id)],
        wait=True,
    )


def _create(client: Any, collection: str, project_id: UUID | str, embedder: Embedder) -> None:
    from qdrant_client import models

    dim = embedder.dim
    client.create_collection(
        collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
    )
    from common.stores.qdrant_store import tune_local

    tune_local(client)
    # Any non-zero vector will do: searches exclude this point by id.
    client.upsert(
        collection,
        points=[
            models.PointStruct(
                id=meta_point_id(project_id),
                vector=[1.0] + [0.0] * (dim - 1),
                payload=_meta_payload(embedder, completed_seq=0),
            )
        ],
    )


def _ensure_collection(
    client: Any, collection: str, project_id: UUID | str, embedder: Embedder
) -> bool:
    """Make the collection ready for ``embedder``; True when an old one was dropped."""
    if client.collection_exists(collection):
        meta = _read_meta(client, collection, project_id)
        if meta is not None and meta.made_by(embedder):
            return False
        log.info(
            "rebuilding a project index made by another embedder",
            extra={
                "collection": collection,
                "was": meta.embedder if meta else None,
                "now": embedder.name,
            },
        )
        client.delete_collection(collection)
        _create(client, collection, project_id, embedder)
        return True
    _create(client, collection, project_id, embedder)
    return False


class FileSource(Protocol):
    """The files an index follows: their hashes first (cheap), content only for those
    that changed. A mapping of texts is one (:class:`TextFiles`); a project's stored
    files are another (:mod:`common.memory.project_index`)."""

    def hashes(self) -> dict[str, str]:
        """Every file's path -> SHA-256 of its text."""
        ...

    def read(self, paths: Sequence[str]) -> Iterator[tuple[str, str]]:
        """(path, text) of ``paths``, in any order; a file gone meanwhile is left out."""
        ...


class TextFiles:
    """:class:`FileSource` over texts in memory."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files

    def hashes(self) -> dict[str, str]:
        return {path: text_sha256(text) for path, text in self.files.items()}

    def read(self, paths: Sequence[str]) -> Iterator[tuple[str, str]]:
        for path in paths:
            if path in self.files:
                yield path, self.files[path]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class _Indexed:
    """What the index holds of one file: the hash it was indexed at and its points."""

    sha256: str | None
    points: dict[str, tuple[int, int]]


def _ledger(client: Any, collection: str, meta_id: str) -> dict[str, _Indexed]:
    """Path -> what is indexed of it, read from the points (no vectors, no text)."""
    found: dict[str, _Indexed] = {}
    offset: Any = None
    while True:
        records, offset = client.scroll(
            collection,
            limit=SCROLL_PAGE,
            offset=offset,
            with_payload=["path", "file_sha256", "start_line", "end_line"],
            with_vectors=False,
        )
        for record in records:
            if str(record.id) == meta_id:
                continue
            payload = record.payload or {}
            path = str(payload.get("path", ""))
            sha = payload.get("file_sha256")
            entry = found.get(path)
            if entry is None:
                found[path] = entry = _Indexed(sha, {})
            elif entry.sha256 != sha:
                # Points of one file from two runs disagree: any doubt reads it again.
                entry.sha256 = None
            entry.points[str(record.id)] = (
                int(payload.get("start_line", 0)),
                int(payload.get("end_line", 0)),
            )
        if offset is None:
            return found


def _file_chunks(project_id: UUID | str, path: str, text: str) -> list[tuple[str, Chunk]]:
    seen: dict[tuple[str | None, str], int] = {}
    out: list[tuple[str, Chunk]] = []
    for chunk in chunk_file(path, text):
        key = (chunk.symbol, chunk.sha256)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        out.append((chunk_point_id(project_id, chunk, occurrence), chunk))
    return out


def _payload(chunk: Chunk, file_sha256: str, seq: int) -> dict[str, Any]:
    return {
        "kind": "chunk",
        "path": chunk.path,
        "language": chunk.language,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "symbol": chunk.symbol,
        "sha256": chunk.sha256,
        "file_sha256": file_sha256,
        "seq": seq,
        "text": chunk.text,
    }


# (step, percent 0-100, message): the shape of JobContext.progress.
Progress = Callable[[str, float, str], None]


def index_files(
    *,
    project_id: UUID | str,
    files: Mapping[str, str] | FileSource,
    embedder: Embedder | None = None,
    client: Any = None,
    revision: str | None = None,
    on_progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> IndexReport:
    """Bring the project's index in line with ``files`` (the whole project).

    Only files whose hash differs from what the index holds are read and chunked;
    of their chunks only new ones are embedded. New points carry the run's number
    (``seq``) and searches see only points of completed runs, so a search during a
    run answers from the last completed index; stale points are removed, and moved
    chunks get their new lines, once every new vector is in.

    Parameters
    ----------
    project_id:
        The project (its collection).
    files:
        Every file of the project: texts by path, or a :class:`FileSource`. Indexed
        files missing here are removed from the index.
    embedder:
        Makes the vectors of new and changed chunks (batched); default: ``get_embedder()``.
    client:
        A ``QdrantClient``; default: ``get_qdrant()``.
    revision:
        What ``files`` are (a commit, an upload's SHA-256), recorded as the index's
        revision once the run completes.
    on_progress:
        Called with (step, percent, message) as files are read and batches embedded.
    checkpoint:
        Called between batches; raising there (a job's cancel) stops the run, leaving
        the last completed index as it was.

    Returns
    -------
    IndexReport

    Raises
    ------
    StoreUnavailable
        Qdrant failed.
    ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        The embedder failed; the last completed index stays what searches see.
    """
    from qdrant_client import models

    started = time.monotonic()
    source: FileSource = TextFiles(files) if isinstance(files, Mapping) else files
    embedder = embedder or get_embedder()
    client = client if client is not None else _qdrant()
    collection = collection_for(project_id)
    meta_id = meta_point_id(project_id)
    from common.storage.tree import files_digest

    hashes = source.hashes()
    digest = files_digest(hashes)
    with _qdrant_errors("preparing the project's index"):
        recreated = _ensure_collection(client, collection, project_id, embedder)
        meta = _read_meta(client, collection, project_id)
        if meta is not None and meta.clean and meta.files_digest == digest:
            return _unchanged(
                client, collection, project_id, embedder, meta, revision, started, len(hashes)
            )
        ledger = _ledger(client, collection, meta_id)
        # From here on the collection may hold points of a run that does not complete.
        client.set_payload(collection, payload={"clean": False}, points=[meta_id], wait=True)
    empty = dict(meta.empty_files) if meta else {}
    for path, sha in empty.items():
        ledger.setdefault(path, _Indexed(sha, {}))
    seq = (meta.completed_seq if meta else 0) + 1
    changed = sorted(p for p, sha in hashes.items() if p not in ledger or ledger[p].sha256 != sha)
    removed = [p for p in ledger if p not in hashes]
    kept_chunks = sum(len(ledger[p].points) for p in hashes if p in ledger and p not in changed)

    new: list[tuple[str, Chunk, str]] = []
    moved: list[tuple[str, Chunk]] = []
    stale: list[str] = [pid for p in removed for pid in ledger[p].points]
    chunks_total = kept_chunks
    for number, (path, text) in enumerate(source.read(changed), 1):
        before = ledger.get(path, _Indexed(None, {})).points
        file_sha = hashes[path]
        wanted: set[str] = set()
        for point_id, chunk in _file_chunks(project_id, path, text):
            wanted.add(point_id)
            chunks_total += 1
            if point_id not in before:
                new.append((point_id, chunk, file_sha))
            elif before[point_id] != (chunk.start_line, chunk.end_line):
                moved.append((point_id, chunk))
        stale += [pid for pid in before if pid not in wanted]
        if wanted:
            empty.pop(path, None)
        else:
            empty[path] = file_sha
        if on_progress is not None and (number % 50 == 0 or number == len(changed)):
            on_progress("reading", 5 + 15 * number / max(1, len(changed)), f"{number} files read")

    # Moved chunks of a changed file keep their vector; their new payload (lines and
    # the file's hash) is written with the run's end, as stale points are removed.
    for start in range(0, len(new), EMBED_BATCH):
        if checkpoint is not None:
            checkpoint()
        batch = new[start : start + EMBED_BATCH]
        vectors = embedder.embed([embedding_text(chunk) for _, chunk, _ in batch])
        points = [
            models.PointStruct(id=point_id, vector=vector, payload=_payload(chunk, sha, seq))
            for (point_id, chunk, sha), vector in zip(batch, vectors, strict=True)
        ]
        with _qdrant_errors("storing vectors"):
            client.upsert(collection, points=points, wait=True)
        if on_progress is not None:
            done = min(len(new), start + EMBED_BATCH)
            on_progress("embedding", 20 + 75 * done / len(new), f"{done} of {len(new)} chunks")
    with _qdrant_errors("updating the index"):
        for start in range(0, len(moved), UPSERT_BATCH):
            client.batch_update_points(
                collection,
                update_operations=[
                    models.SetPayloadOperation(
                        set_payload=models.SetPayload(
                            payload={
                                "start_line": chunk.start_line,
                                "end_line": chunk.end_line,
                                "file_sha256": hashes[chunk.path],
                            },
                            points=[point_id],
                        )
                    )
                    for point_id, chunk in moved[start : start + UPSERT_BATCH]
                ],
            )
        for start in range(0, len(stale), UPSERT_BATCH):
            client.delete(
                collection,
                points_selector=models.PointIdsList(points=stale[start : start + UPSERT_BATCH]),
            )
        # Unchanged points of a changed file carry the file's old hash: bring them along,
        # or the next run would read the file again.
        rewritten = set(stale) | {point_id for point_id, _ in moved}
        refreshed = [
            pid for p in changed if p in ledger for pid in ledger[p].points if pid not in rewritten
        ]
        _set_file_hashes(client, collection, refreshed, ledger, hashes)
        _write_meta(
            client,
            collection,
            project_id,
            embedder,
            completed_seq=seq,
            revision=revision,
            empty_files={p: sha for p, sha in empty.items() if p in hashes},
            files_digest=digest,
            chunks_total=chunks_total,
        )
    return _reported(
        project_id,
        embedder,
        started,
        files=len(hashes),
        chunks_total=chunks_total,
        embedded=len(new),
        deleted=len(stale),
        recreated=recreated,
        files_read=len(changed),
        revision=revision,
    )


def _reported(
    project_id: UUID | str,
    embedder: Embedder,
    started: float,
    *,
    chunks_total: int,
    embedded: int,
    **counts: Any,
) -> IndexReport:
    report = IndexReport(
        chunks_total=chunks_total,
        embedded=embedded,
        skipped_unchanged=chunks_total - embedded,
        duration_ms=round((time.monotonic() - started) * 1000),
        embedder=embedder.name,
        dim=embedder.dim,
        **counts,
    )
    log.info("indexed project", extra={"project_id": str(project_id), **report.model_dump()})
    return report


def _unchanged(
    client: Any,
    collection: str,
    project_id: UUID | str,
    embedder: Embedder,
    meta: _Meta,
    revision: str | None,
    started: float,
    files: int,
) -> IndexReport:
    """The files are the completed run's: only the revision (and when) is recorded."""
    _write_meta(
        client,
        collection,
        project_id,
        embedder,
        completed_seq=meta.completed_seq,
        revision=revision,
        empty_files=meta.empty_files,
        files_digest=meta.files_digest or "",
        chunks_total=meta.chunks_total,
    )
    return _reported(
        project_id,
        embedder,
        started,
        files=files,
        chunks_total=meta.chunks_total,
        embedded=0,
        deleted=0,
        recreated=False,
        files_read=0,
        revision=revision,
    )


def _set_file_hashes(
    client: Any,
    collection: str,
    point_ids: list[str],
    ledger: Mapping[str, _Indexed],
    hashes: Mapping[str, str],
) -> None:
    from qdrant_client import models

    by_file: dict[str, list[str]] = {}
    owner = {pid: path for path, entry in ledger.items() for pid in entry.points}
    for pid in point_ids:
        by_file.setdefault(owner[pid], []).append(pid)
    operations = [
        models.SetPayloadOperation(
            set_payload=models.SetPayload(payload={"file_sha256": hashes[path]}, points=ids)
        )
        for path, ids in by_file.items()
    ]
    for start in range(0, len(operations), UPSERT_BATCH):
        client.batch_update_points(
            collection, update_operations=operations[start : start + UPSERT_BATCH]
        )


@dataclass(frozen=True)
class Found:
    """A search's hits and the completed index they came from."""

    hits: list[Hit]
    revision: str | None
    indexed_at: float | None


def search(
    project_id: UUID | str,
    query: str,
    k: int = 5,
    *,
    embedder: Embedder | None = None,
    client: Any = None,
) -> list[Hit]:
    """The ``k`` chunks closest in meaning to ``query``, best first (see :func:`find`)."""
    return find(project_id, query, k, embedder=embedder, client=client).hits


def find(
    project_id: UUID | str,
    query: str,
    k: int = 5,
    *,
    embedder: Embedder | None = None,
    client: Any = None,
) -> Found:
    """The ``k`` chunks closest in meaning to ``query`` in the last completed index.

    Points a run is still adding (or left behind when it failed) are not seen; nor
    are any before a first run completed.

    Parameters
    ----------
    embedder, client:
        As for :func:`index_files`.

    Returns
    -------
    Found
        No hits when the project was never indexed.

    Raises
    ------
    Conflict
        The project was indexed with another embedder: index it again.
    StoreUnavailable
        Qdrant failed.
    """
    from qdrant_client import models

    embedder = embedder or get_embedder()
    client = client if client is not None else _qdrant()
    collection = collection_for(project_id)
    with _qdrant_errors("reading the project's index"):
        if not client.collection_exists(collection):
            return Found([], None, None)
        meta = _read_meta(client, collection, project_id)
    if meta is None or (meta.embedder, meta.schema) != (embedder.name, SCHEMA):
        raise Conflict(
            f"the project was indexed with {meta.embedder if meta else 'an unknown embedder'},"
            f" and embeddings now come from {embedder.name}: index the project again",
            details={"indexed_with": meta.embedder if meta else None, "embedder": embedder.name},
        )
    if meta.completed_seq == 0:
        return Found([], None, None)
    [vector] = embedder.embed([query])
    with _qdrant_errors("searching"):
        response = client.query_points(
            collection,
            query=vector,
            limit=k,
            with_payload=True,
            query_filter=models.Filter(
                must=[models.FieldCondition(key="seq", range=models.Range(lte=meta.completed_seq))],
                must_not=[models.HasIdCondition(has_id=[meta_point_id(project_id)])],
            ),
        )
    hits = [_hit(point.payload or {}, float(point.score)) for point in response.points]
    return Found(hits, meta.revision, meta.indexed_at)


def index_state(project_id: UUID | str, *, client: Any = None) -> _Meta | None:
    """What the project's last completed index is (None: no index)."""
    client = client if client is not None else _qdrant()
    collection = collection_for(project_id)
    with _qdrant_errors("reading the project's index"):
        if not client.collection_exists(collection):
            return None
        return _read_meta(client, collection, project_id)


def _hit(payload: Mapping[str, Any], score: float) -> Hit:
    return Hit(
        path=str(payload.get("path", "")),
        start_line=int(payload.get("start_line", 0)),
        end_line=int(payload.get("end_line", 0)),
        symbol=payload.get("symbol"),
        language=payload.get("language"),
        score=score,
        text=str(payload.get("text", ""))[:HIT_TEXT_CHARS],
    )


def delete_index(*, project_id: UUID | str, client: Any = None) -> None:
    """Drop the project's collection (nothing happens when there is none)."""
    client = client if client is not None else _qdrant()
    with _qdrant_errors("deleting the project's index"):
        collection = collection_for(project_id)
        if client.collection_exists(collection):
            client.delete_collection(collection)
