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

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from common.errors import AppError, Conflict, StoreUnavailable
from common.logs import get_logger
from common.memory.chunking import Chunk, chunk_file
from common.memory.embedders import Embedder, get_embedder
from common.memory.models import Hit, IndexReport

log = get_logger("memory.index")

# Schema of the points; a change rebuilds every collection on its next indexing.
SCHEMA = 1
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
        return _Meta(str(payload["embedder"]), int(payload["dim"]), int(payload["schema"]))
    except (KeyError, TypeError, ValueError):
        return None


def _create(client: Any, collection: str, project_id: UUID | str, embedder: Embedder) -> None:
    from qdrant_client import models

    dim = embedder.dim
    client.create_collection(
        collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
    )
    # Any non-zero vector will do: searches exclude this point by id.
    client.upsert(
        collection,
        points=[
            models.PointStruct(
                id=meta_point_id(project_id),
                vector=[1.0] + [0.0] * (dim - 1),
                payload={"kind": "meta", "embedder": embedder.name, "dim": dim, "schema": SCHEMA},
            )
        ],
    )


def _ensure_collection(
    client: Any, collection: str, project_id: UUID | str, embedder: Embedder
) -> bool:
    """Make the collection ready for ``embedder``; True when an old one was dropped."""
    if client.collection_exists(collection):
        meta = _read_meta(client, collection, project_id)
        if meta == _Meta(embedder.name, embedder.dim, SCHEMA):
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


def _existing_points(client: Any, collection: str, meta_id: str) -> dict[str, dict[str, Any]]:
    """Every chunk point's id -> its line numbers (no vectors, no text)."""
    found: dict[str, dict[str, Any]] = {}
    offset: Any = None
    while True:
        records, offset = client.scroll(
            collection,
            limit=SCROLL_PAGE,
            offset=offset,
            with_payload=["start_line", "end_line"],
            with_vectors=False,
        )
        for record in records:
            if str(record.id) != meta_id:
                found[str(record.id)] = dict(record.payload or {})
        if offset is None:
            return found


def _chunks_with_ids(project_id: UUID | str, files: Mapping[str, str]) -> list[tuple[str, Chunk]]:
    out: list[tuple[str, Chunk]] = []
    for path in sorted(files):
        seen: dict[tuple[str | None, str], int] = {}
        for chunk in chunk_file(path, files[path]):
            key = (chunk.symbol, chunk.sha256)
            occurrence = seen.get(key, 0)
            seen[key] = occurrence + 1
            out.append((chunk_point_id(project_id, chunk, occurrence), chunk))
    return out


def _payload(chunk: Chunk) -> dict[str, Any]:
    return {
        "kind": "chunk",
        "path": chunk.path,
        "language": chunk.language,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "symbol": chunk.symbol,
        "sha256": chunk.sha256,
        "text": chunk.text,
    }


def index_files(
    *,
    project_id: UUID | str,
    files: Mapping[str, str],
    embedder: Embedder | None = None,
    client: Any = None,
) -> IndexReport:
    """Bring the project's index in line with ``files`` (the whole project).

    Parameters
    ----------
    project_id:
        The project (its collection).
    files:
        Every file of the project, path -> content. Indexed files missing here are
        removed from the index.
    embedder:
        Makes the vectors of new and changed chunks (batched); default: ``get_embedder()``.
    client:
        A ``QdrantClient``; default: ``get_qdrant()``.

    Returns
    -------
    IndexReport

    Raises
    ------
    StoreUnavailable
        Qdrant failed.
    ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        The embedder failed; chunks embedded before the failure stay indexed.
    """
    from qdrant_client import models

    started = time.monotonic()
    embedder = embedder or get_embedder()
    client = client if client is not None else _qdrant()
    collection = collection_for(project_id)
    meta_id = meta_point_id(project_id)
    chunks = _chunks_with_ids(project_id, files)
    with _qdrant_errors("preparing the project's index"):
        recreated = _ensure_collection(client, collection, project_id, embedder)
        existing = _existing_points(client, collection, meta_id)

    wanted = {point_id for point_id, _ in chunks}
    new = [(point_id, chunk) for point_id, chunk in chunks if point_id not in existing]
    moved = [
        (point_id, chunk)
        for point_id, chunk in chunks
        if point_id in existing
        and (existing[point_id].get("start_line"), existing[point_id].get("end_line"))
        != (chunk.start_line, chunk.end_line)
    ]
    stale = [point_id for point_id in existing if point_id not in wanted]

    # New vectors first, old ones after: a search meanwhile sees old or new, never neither.
    for start in range(0, len(new), EMBED_BATCH):
        batch = new[start : start + EMBED_BATCH]
        vectors = embedder.embed([embedding_text(chunk) for _, chunk in batch])
        points = [
            models.PointStruct(id=point_id, vector=vector, payload=_payload(chunk))
            for (point_id, chunk), vector in zip(batch, vectors, strict=True)
        ]
        with _qdrant_errors("storing vectors"):
            client.upsert(collection, points=points, wait=True)
    with _qdrant_errors("updating the index"):
        for start in range(0, len(moved), UPSERT_BATCH):
            client.batch_update_points(
                collection,
                update_operations=[
                    models.SetPayloadOperation(
                        set_payload=models.SetPayload(
                            payload={"start_line": chunk.start_line, "end_line": chunk.end_line},
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
    report = IndexReport(
        files=len(files),
        chunks_total=len(chunks),
        embedded=len(new),
        skipped_unchanged=len(chunks) - len(new),
        deleted=len(stale),
        duration_ms=round((time.monotonic() - started) * 1000),
        embedder=embedder.name,
        dim=embedder.dim,
        recreated=recreated,
    )
    log.info("indexed project", extra={"project_id": str(project_id), **report.model_dump()})
    return report


def search(
    project_id: UUID | str,
    query: str,
    k: int = 5,
    *,
    embedder: Embedder | None = None,
    client: Any = None,
) -> list[Hit]:
    """The ``k`` chunks closest in meaning to ``query``, best first.

    Parameters
    ----------
    embedder, client:
        As for :func:`index_files`.

    Returns
    -------
    list[Hit]
        Empty when the project was never indexed.

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
            return []
        meta = _read_meta(client, collection, project_id)
    if meta is None or (meta.embedder, meta.schema) != (embedder.name, SCHEMA):
        raise Conflict(
            f"the project was indexed with {meta.embedder if meta else 'an unknown embedder'},"
            f" and embeddings now come from {embedder.name}: index the project again",
            details={"indexed_with": meta.embedder if meta else None, "embedder": embedder.name},
        )
    [vector] = embedder.embed([query])
    with _qdrant_errors("searching"):
        response = client.query_points(
            collection,
            query=vector,
            limit=k,
            with_payload=True,
            query_filter=models.Filter(
                must_not=[models.HasIdCondition(has_id=[meta_point_id(project_id)])]
            ),
        )
    return [_hit(point.payload or {}, float(point.score)) for point in response.points]


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
