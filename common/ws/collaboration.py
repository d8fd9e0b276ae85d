"""``/ws/collaboration/{sid}``: shared editing that a y-websocket client can join.

The route speaks the y-websocket protocol (:mod:`common.ws.yprotocol`) over binary
frames, so a browser editor bound to Yjs with ``new WebsocketProvider(url, sid, doc,
{params: {api_key}})`` (url ending in ``/ws/collaboration``) is a client, as is any
pycrdt ``Provider``. A connection opened with ``?frames=base64`` speaks the same
messages as base64 text frames instead (:mod:`common.ws.frames`): the doors encode
what goes to it, and :meth:`CollaborationHandler.receive` decodes what it sends;
that is how a browser behind API Gateway, which refuses binary frames from clients,
takes part. Both kinds of connection share a document.

It keeps no room in memory: every message can be a separate Lambda invocation
behind API Gateway. The document is the merge of its stored Yjs updates, read from
MongoDB when it is needed (a client's sync step 1, a connect), so it survives every
client leaving and any restart:

- ``collab_documents``: one per sid: the owner key and a ``snapshot`` (a merged update)
  with a ``version`` for optimistic compaction;
- ``collab_updates``: each update as it arrived, appended before it is relayed.

Compaction merges the updates into the snapshot (``pycrdt.merge_updates``: lossless,
updates still waiting for missing parts included) once a connect finds many of them,
or after many appends in one process. The snapshot is written first, under its
version, and only then are the merged updates deleted; loads read the updates
before the snapshot; so a load racing a compaction sees every update at least once
(merging twice changes nothing).

Awareness (cursors, names) is kept in Redis for a minute with y-protocols' rules
(:class:`RedisAwareness`) and what changes is relayed to the others, so a client
joining later gets the others' states and a connection's clients are announced gone
(``"null"`` states) when it disconnects. Awareness is best-effort: with Redis down
it is relayed as it comes, not remembered.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.errors import StoreUnavailable
from common.logs import get_logger
from common.ws.base import (
    CLOSE_BAD_MESSAGE,
    CLOSE_FORBIDDEN,
    CLOSE_UNAVAILABLE,
    Outbox,
    WsConnection,
    WsRefused,
)
from common.ws.frames import (
    FRAMES_BINARY,
    FRAMES_PARAM,
    FRAMES_VALUES,
    base64_frames,
    binary_from_text,
)
from common.ws.yprotocol import (
    EMPTY_UPDATE,
    MESSAGE_AUTH,
    MESSAGE_AWARENESS,
    MESSAGE_QUERY_AWARENESS,
    MESSAGE_SYNC,
    SYNC_STEP1,
    AwarenessEntry,
    ProtocolError,
    awareness_message,
    parse_awareness,
    parse_message,
    sync_step1,
    sync_step2,
    sync_update,
)

if TYPE_CHECKING:
    from pymongo.database import Database

    from common.stores.redis_store import RedisStore

log = get_logger("ws.collaboration")

ROUTE = "collaboration"
DOCUMENTS = "collab_documents"
UPDATES = "collab_updates"
# Stored updates past which a connect (or this many appends in one process) compacts.
COMPACT_AFTER = 200
# y-protocols' outdatedTimeout: clients renew their state every half of it.
AWARENESS_OUTDATED_S = 30.0
AWARENESS_TTL_S = 60
_SID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_BAD_FRAMES = 5


# -- the document ----------------------------------------------------------------------


@dataclass
class Loaded:
    """A document as read: the merged update and what it was merged from."""

    update: bytes
    version: int
    update_ids: list[Any] = field(default_factory=list)


class DocumentStore(Protocol):
    """Where documents live (MongoDB; tests may pass another)."""

    def open(self, sid: str, key_id: UUID) -> str:
        """Create the document if it is new; the owner key's id (as text)."""
        ...

    def load(self, sid: str) -> Loaded: ...

    def append(self, sid: str, update: bytes) -> None: ...

    def compact(self, sid: str, loaded: Loaded) -> bool:
        """Replace the snapshot by ``loaded`` if nobody compacted meanwhile."""
        ...


def merge(parts: list[bytes]) -> bytes:
    """One update holding all of ``parts`` (the empty document for none).

    A part that cannot be merged (written by a buggy client) is skipped and logged
    rather than making the whole document unreadable.
    """
    from pycrdt import merge_updates

    parts = [p for p in parts if p and p != EMPTY_UPDATE]
    if not parts:
        return EMPTY_UPDATE
    if len(parts) == 1:
        return parts[0]
    try:
        return merge_updates(*parts)
    except ValueError:
        merged = EMPTY_UPDATE
        for part in parts:
            try:
                merged = merge_updates(merged, part)
            except ValueError:
                log.warning("collaboration: skipped an update that does not merge")
        return merged


class MongoDocuments:
    """Documents in MongoDB: a snapshot per sid plus the updates appended since."""

    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self.db = db

    def open(self, sid: str, key_id: UUID) -> str:
        from pymongo import ReturnDocument
        from pymongo.errors import DuplicateKeyError, PyMongoError

        now = datetime.now(UTC)
        new = {"key_id": str(key_id), "snapshot": b"", "version": 0, "created_at": now}
        try:
            try:
                doc = self.db[DOCUMENTS].find_one_and_update(
                    {"sid": sid},
                    {"$setOnInsert": new},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # two first connects at once: the other one won
                doc = self.db[DOCUMENTS].find_one({"sid": sid})
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB is unreachable (MONGODB_URL)") from exc
        if doc is None or not isinstance(doc.get("key_id"), str):
            raise StoreUnavailable("the document could not be created")
        return str(doc["key_id"])

    def load(self, sid: str) -> Loaded:
        from pymongo.errors import PyMongoError

        try:
            # Updates first, then the snapshot: see the module docstring.
            rows = list(self.db[UPDATES].find({"sid": sid}, {"_id": 1, "update": 1}).sort("_id", 1))
            doc = self.db[DOCUMENTS].find_one({"sid": sid}, {"snapshot": 1, "version": 1})
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB is unreachable (MONGODB_URL)") from exc
        snapshot = bytes(doc.get("snapshot") or b"") if doc else b""
        parts = [snapshot, *(bytes(row["update"]) for row in rows)]
        return Loaded(
            update=merge(parts),
            version=int(doc.get("version", 0)) if doc else 0,
            update_ids=[row["_id"] for row in rows],
        )

    def append(self, sid: str, update: bytes) -> None:
        from pymongo.errors import PyMongoError

        try:
            self.db[UPDATES].insert_one(
                {"sid": sid, "update": update, "created_at": datetime.now(UTC)}
            )
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB is unreachable (MONGODB_URL)") from exc

    def compact(self, sid: str, loaded: Loaded) -> bool:
        from pymongo.errors import PyMongoError

        if not loaded.update_ids:
            return False
        try:
            written = self.db[DOCUMENTS].update_one(
                {"sid": sid, "version": loaded.version},
                {
                    "$set": {
                        "snapshot": loaded.update,
                        "version": loaded.version + 1,
                        "updated_at": datetime.now(UTC),
                    }
                },
            )
            if written.modified_count != 1:
                return False  # another process compacted first; its snapshot holds ours
            self.db[UPDATES].delete_many({"_id": {"$in": loaded.update_ids}})
        except PyMongoError as exc:
            # Nothing is lost: the updates stay until a later compaction.
            log.warning("collaboration: compaction failed", extra={"error": type(exc).__name__})
            return False
        return True


# -- awareness ---------------------------------------------------------------------------


class AwarenessStore(Protocol):
    def put(self, sid: str, conn_id: str, entries: list[AwarenessEntry]) -> list[AwarenessEntry]:
        """Apply ``entries`` as y-protocols does; returns those that changed something."""
        ...

    def states(self, sid: str) -> list[AwarenessEntry]: ...

    def take(self, sid: str, conn_id: str) -> list[AwarenessEntry]:
        """Mark the clients ``conn_id`` introduced as gone (clock + 1); returns the
        removals to announce."""
        ...


class RedisAwareness:
    """Awareness in a Redis hash per sid, expiring a minute after the last write.

    Each field is a client id -> ``{"clock", "state", "conn", "at"}``. As y-protocols'
    own Awareness does, a removed client keeps its clock (``"state": "null"``), so a
    late echo of its old state does not bring it back, and an update is applied
    only when its clock is newer (or it is a removal at the same clock). Only
    applied updates are relayed: clients rebroadcast every change they see, and
    relaying stale ones back and forth is noise.
    """

    def __init__(self, redis: RedisStore) -> None:
        self.redis = redis

    def _key(self, sid: str) -> str:
        return self.redis.key("collab", "awareness", sid)

    def put(self, sid: str, conn_id: str, entries: list[AwarenessEntry]) -> list[AwarenessEntry]:
        key = self._key(sid)
        fields = [str(e.client_id) for e in entries]
        known = self.redis.client.hmget(key, fields) if fields else []
        now = time.time()
        applied = []
        pipe = self.redis.client.pipeline()
        for entry, raw in zip(entries, known, strict=True):
            old = _decode(raw)
            clock = int(old["clock"]) if old else 0
            present = old is not None and old.get("state") != "null"
            if not (clock < entry.clock or (clock == entry.clock and entry.gone and present)):
                continue
            # A client belongs to the connection that introduced it (others relay its
            # state too): that connection's disconnect announces it gone.
            owner = old["conn"] if old and present else conn_id
            value = {"clock": entry.clock, "state": entry.state, "conn": owner, "at": now}
            pipe.hset(key, str(entry.client_id), json.dumps(value))
            applied.append(entry)
        pipe.expire(key, AWARENESS_TTL_S)
        pipe.execute()
        return applied

    def states(self, sid: str) -> list[AwarenessEntry]:
        now = time.time()
        entries = []
        for client, raw in self.redis.client.hgetall(self._key(sid)).items():
            value = _decode(raw)
            if (
                value
                and value.get("state") != "null"
                and now - float(value.get("at", 0)) < AWARENESS_OUTDATED_S
            ):
                entries.append(AwarenessEntry(int(client), int(value["clock"]), value["state"]))
        return entries

    def take(self, sid: str, conn_id: str) -> list[AwarenessEntry]:
        key = self._key(sid)
        gone = []
        now = time.time()
        for client, raw in self.redis.client.hgetall(key).items():
            value = _decode(raw)
            if value and value.get("conn") == conn_id and value.get("state") != "null":
                gone.append(AwarenessEntry(int(client), int(value["clock"]) + 1, "null"))
        if gone:
            pipe = self.redis.client.pipeline()
            for entry in gone:
                tombstone = {"clock": entry.clock, "state": "null", "conn": conn_id, "at": now}
                pipe.hset(key, str(entry.client_id), json.dumps(tombstone))
            pipe.expire(key, AWARENESS_TTL_S)
            pipe.execute()
        return gone


def _redis_errors() -> tuple[type[Exception], ...]:
    from redis import RedisError

    return (RedisError, StoreUnavailable)


def _decode(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- the route ---------------------------------------------------------------------------


class CollaborationHandler:
    """The collaboration route: the y-websocket protocol over stored Yjs updates.

    Parameters
    ----------
    documents, awareness:
        The stores; None: MongoDB and Redis from the settings, on first use.
    """

    route = ROUTE
    path = "/ws/collaboration/{sid}"
    local_only = False

    def __init__(
        self,
        documents: DocumentStore | None = None,
        awareness: AwarenessStore | None = None,
    ) -> None:
        self._documents = documents
        self._awareness = awareness
        self._appended: dict[str, int] = {}
        self._bad: dict[str, int] = {}
        self._background: set[asyncio.Task[None]] = set()

    # Not kept: the process-wide clients are asked each time (cheap), so a handler
    # that outlives a reset of the stores (the registry is process-wide) follows it.
    @property
    def documents(self) -> DocumentStore:
        if self._documents is None:
            from common.stores.mongo import get_mongo

            return MongoDocuments(get_mongo())
        return self._documents

    @property
    def awareness(self) -> AwarenessStore:
        if self._awareness is None:
            from common.stores.redis_store import get_redis

            return RedisAwareness(get_redis())
        return self._awareness

    async def connect(self, conn: WsConnection, out: Outbox) -> None:
        """Send sync step 1 (the stored state vector) and the others' awareness.

        Raises
        ------
        WsRefused
            4400 for a malformed sid or an unknown ``frames`` parameter, 4403 for
            another key's document, 4503 when MongoDB is unreachable.
        """
        from pycrdt import get_state

        sid = conn.sid or ""
        if not _SID.fullmatch(sid):
            raise WsRefused(CLOSE_BAD_MESSAGE, "the sid must be 1-128 letters, digits, _ . : -")
        if conn.params.get(FRAMES_PARAM, FRAMES_BINARY) not in FRAMES_VALUES:
            raise WsRefused(CLOSE_BAD_MESSAGE, "frames must be binary or base64")
        try:
            owner = await asyncio.to_thread(self.documents.open, sid, conn.key_id)
            if owner != str(conn.key_id):
                raise WsRefused(CLOSE_FORBIDDEN, "this document belongs to another key")
            loaded = await asyncio.to_thread(self.documents.load, sid)
        except StoreUnavailable as exc:
            raise WsRefused(CLOSE_UNAVAILABLE, "the document store is unavailable") from exc
        if len(loaded.update_ids) >= COMPACT_AFTER:
            # Here rather than on a timer: behind API Gateway there is no timer.
            await asyncio.to_thread(self.documents.compact, sid, loaded)
        await out.send(conn, sync_step1(get_state(loaded.update)))
        states = await self._states(sid)
        if states:
            await out.send(conn, awareness_message(states))

    async def receive(self, conn: WsConnection, message: str | bytes, out: Outbox) -> None:
        """One y-websocket message: a binary frame, or on a ``frames=base64``
        connection a text frame holding its base64 (binary frames are taken there too).
        Anything else is a bad frame (:meth:`_refuse`)."""
        sid = conn.sid or ""
        if isinstance(message, str):
            if not base64_frames(conn.params):
                await self._refuse(
                    conn,
                    out,
                    "frames are binary y-websocket messages (or connect with frames=base64)",
                )
                return
            try:
                message = binary_from_text(message)
            except ValueError as exc:
                await self._refuse(conn, out, str(exc))
                return
        try:
            parsed = parse_message(message)
            if parsed.kind == MESSAGE_SYNC and parsed.step == SYNC_STEP1:
                await self._answer_step1(conn, out, sid, parsed.payload)
            elif parsed.kind == MESSAGE_SYNC:
                await self._apply(conn, out, sid, parsed.payload)
            elif parsed.kind == MESSAGE_AWARENESS:
                await self._relay_awareness(conn, out, sid, parsed.payload)
            elif parsed.kind == MESSAGE_QUERY_AWARENESS:
                states = await self._states(sid)
                if states:
                    await out.send(conn, awareness_message(states))
            elif parsed.kind == MESSAGE_AUTH:
                pass  # only servers send auth messages (permission denied)
        except ProtocolError as exc:
            await self._refuse(conn, out, str(exc))
            return
        except StoreUnavailable:
            # The client keeps its changes: after a reconnect, sync steps 1 and 2 send
            # us whatever we did not store.
            await out.close(conn, CLOSE_UNAVAILABLE, "the document store is unavailable")
            return
        self._bad.pop(conn.id, None)

    async def disconnect(self, conn: WsConnection, out: Outbox) -> None:
        """Tell the others that this connection's clients are gone."""
        self._bad.pop(conn.id, None)
        sid = conn.sid or ""
        try:
            gone = await asyncio.to_thread(self.awareness.take, sid, conn.id)
        except _redis_errors() as exc:  # awareness is best-effort: Redis may be down
            log.warning("collaboration: awareness lost", extra={"error": type(exc).__name__})
            return
        if gone:
            await out.broadcast_bytes(ROUTE, sid, awareness_message(gone), exclude=conn.id)

    # -- messages ---------------------------------------------------------------------------

    async def _answer_step1(
        self, conn: WsConnection, out: Outbox, sid: str, state_vector: bytes
    ) -> None:
        from pycrdt import get_update

        loaded = await asyncio.to_thread(self.documents.load, sid)
        try:
            missing = get_update(loaded.update, state_vector)
        except ValueError as exc:
            raise ProtocolError("sync step 1 holds no state vector") from exc
        await out.send(conn, sync_step2(missing))

    async def _apply(self, conn: WsConnection, out: Outbox, sid: str, update: bytes) -> None:
        from pycrdt import get_state

        if update == EMPTY_UPDATE:
            return
        try:
            get_state(update)  # decodes the whole update: garbage is refused, not stored
        except ValueError as exc:
            raise ProtocolError("not a Yjs update") from exc
        # Stored before it is relayed: a client joining in between reads it.
        await asyncio.to_thread(self.documents.append, sid, update)
        await out.broadcast_bytes(ROUTE, sid, sync_update(update), exclude=conn.id)
        count = self._appended.get(sid, 0) + 1
        self._appended[sid] = count
        if count >= COMPACT_AFTER:
            self._appended[sid] = 0
            task = asyncio.create_task(self._compact(sid))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _compact(self, sid: str) -> None:
        try:
            loaded = await asyncio.to_thread(self.documents.load, sid)
            await asyncio.to_thread(self.documents.compact, sid, loaded)
        except StoreUnavailable:
            pass  # the next connect or burst of appends tries again

    async def _relay_awareness(
        self, conn: WsConnection, out: Outbox, sid: str, update: bytes
    ) -> None:
        entries = parse_awareness(update)
        try:
            entries = await asyncio.to_thread(self.awareness.put, sid, conn.id, entries)
        except _redis_errors() as exc:  # best-effort: relay it all the same
            log.warning("collaboration: awareness not kept", extra={"error": type(exc).__name__})
        if entries:
            # To the sender too, as y-websocket's own server does: its client reconnects
            # after 30 s without a message, and a lone editor's only traffic is its
            # awareness renewal every 15 s (the echo is a no-op for its own state).
            await out.broadcast_bytes(ROUTE, sid, awareness_message(entries))

    async def _states(self, sid: str) -> list[AwarenessEntry]:
        try:
            return await asyncio.to_thread(self.awareness.states, sid)
        except _redis_errors() as exc:
            log.warning("collaboration: awareness unknown", extra={"error": type(exc).__name__})
            return []

    async def _refuse(self, conn: WsConnection, out: Outbox, reason: str) -> None:
        """A bad frame is dropped; a few in a row close the connection with 4400."""
        count = self._bad.get(conn.id, 0) + 1
        self._bad[conn.id] = count
        log.info("collaboration: bad frame", extra={"reason": reason})
        if count >= _BAD_FRAMES:
            await out.close(conn, CLOSE_BAD_MESSAGE, f"bad frames: {reason}")
