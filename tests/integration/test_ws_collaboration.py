"""The collaboration route handler with a fake door and real stores (MongoDB, Redis).

Clients are pycrdt documents synchronised by pycrdt's own ``Provider`` (an
independent implementation of the y-websocket client side), whose frames a fake
door carries to the handler and back, as the doors' contract describes.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import pytest
from pycrdt import (
    Awareness,
    Doc,
    Provider,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
)

from common.ws import collaboration
from common.ws.base import CLOSE_BAD_MESSAGE, CLOSE_FORBIDDEN, WsConnection, WsRefused
from common.ws.collaboration import CollaborationHandler
from common.ws.yprotocol import (
    MESSAGE_AWARENESS,
    AwarenessEntry,
    awareness_message,
    parse_awareness,
    parse_message,
    sync_step1,
    sync_update,
)

KEY = UUID(int=11)
OTHER_KEY = UUID(int=12)


class FakeDoor:
    """Carries frames between the handler and in-memory clients."""

    def __init__(self, handler: CollaborationHandler) -> None:
        self.handler = handler
        self.conns: dict[str, WsConnection] = {}
        self.inboxes: dict[str, asyncio.Queue[bytes | None]] = {}
        self.closed: dict[str, int] = {}

    def open(
        self, sid: str, key: UUID = KEY, *, params: dict[str, str] | None = None
    ) -> WsConnection:
        conn = WsConnection(
            id=uuid.uuid4().hex,
            key_id=key,
            route="collaboration",
            sid=sid,
            connected_at=time.time(),
            params=params or {},
        )
        self.conns[conn.id] = conn
        self.inboxes[conn.id] = asyncio.Queue()
        return conn

    async def send(self, conn: WsConnection, message: dict[str, Any] | bytes) -> bool:
        if conn.id not in self.conns:
            return False
        assert isinstance(message, bytes), "the route sends bytes (the doors encode them)"
        self.inboxes[conn.id].put_nowait(message)
        return True

    async def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        raise AssertionError("the collaboration route publishes no numbered events")

    async def broadcast_bytes(
        self, route: str, sid: str, data: bytes, *, exclude: str | None = None
    ) -> None:
        assert route == "collaboration"
        for conn in list(self.conns.values()):
            if conn.sid == sid and conn.id != exclude:
                self.inboxes[conn.id].put_nowait(data)

    async def close(self, conn: WsConnection, code: int, reason: str) -> None:
        if self.conns.pop(conn.id, None) is not None:
            self.closed[conn.id] = code
            self.inboxes[conn.id].put_nowait(None)
            await self.handler.disconnect(conn, self)

    async def leave(self, conn: WsConnection) -> None:
        if self.conns.pop(conn.id, None) is not None:
            self.inboxes[conn.id].put_nowait(None)
            await self.handler.disconnect(conn, self)


class DoorChannel:
    """pycrdt's Channel over the fake door: what a WebSocket is to a real client."""

    def __init__(self, door: FakeDoor, conn: WsConnection) -> None:
        self.door, self.conn = door, conn
        self.awareness: list[bytes] = []  # awareness frames received (Provider ignores them)

    @property
    def path(self) -> str:
        return f"/ws/collaboration/{self.conn.sid}"

    def __aiter__(self) -> DoorChannel:
        return self

    async def __anext__(self) -> bytes:
        return await self.recv()

    async def send(self, message: bytes | str) -> None:
        if self.conn.id in self.door.conns:
            await self.door.handler.receive(self.conn, message, self.door)

    async def recv(self) -> bytes:
        while True:
            message = await self.door.inboxes[self.conn.id].get()
            if message is None:
                raise StopAsyncIteration
            if parse_message(message).kind == MESSAGE_AWARENESS:
                self.awareness.append(message)
                continue
            return message


class Base64Channel(DoorChannel):
    """A ``frames=base64`` client: each message goes as a text frame of its base64 (what
    comes back is the door's to encode, so the fake door hands it over as bytes)."""

    async def send(self, message: bytes | str) -> None:
        await super().send(
            base64.b64encode(message).decode() if isinstance(message, bytes) else message
        )


class Client:
    def __init__(self, door: FakeDoor, conn: WsConnection, doc: Doc, channel: DoorChannel):
        self.door, self.conn, self.doc, self.channel = door, conn, doc, channel
        self.text = doc.get("text", type=Text)

    def awareness_seen(self) -> list[AwarenessEntry]:
        found: list[AwarenessEntry] = []
        for frame in self.channel.awareness:
            found += parse_awareness(parse_message(frame).payload)
        return found


@asynccontextmanager
async def joined(
    door: FakeDoor, sid: str, doc: Doc | None = None, *, base64_frames: bool = False
) -> AsyncIterator[Client]:
    """A client that connects, syncs (both ways), and leaves at the end."""
    conn = door.open(sid, params={"frames": "base64"} if base64_frames else None)
    await door.handler.connect(conn, door)
    doc = doc or Doc()
    channel = (Base64Channel if base64_frames else DoorChannel)(door, conn)
    async with Provider(doc, channel) as provider:
        await asyncio.wait_for(provider.synced.wait(), 5)
        yield Client(door, conn, doc, channel)
    await door.leave(conn)


async def eventually(check: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(scenario(), 30)

    asyncio.run(main())


def new_sid() -> str:
    return "doc-" + uuid.uuid4().hex[:12]


def test_concurrent_edits_converge_and_a_late_joiner_gets_the_merged_text(stores: None) -> None:
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid) as ann, joined(door, sid) as bob:
            ann.text += "shared: "
            await eventually(lambda: str(bob.text) == "shared: ")
            # When both edit the same place before seeing each other's change
            ann.text.insert(8, "ann")
            bob.text.insert(8, "bob")
            # Then both converge on one text holding both edits
            await eventually(lambda: str(ann.text) == str(bob.text) and len(str(ann.text)) == 14)
            merged = str(ann.text)
            assert merged in ("shared: annbob", "shared: bobann")
            # And a third client joining later gets the merged text from the store
            async with joined(door, sid) as cat:
                assert str(cat.text) == merged
                cat.text += "?"
                await eventually(lambda: str(ann.text) == merged + "?" == str(bob.text))

    run(scenario)


def test_the_document_survives_everyone_leaving_and_a_restart(stores: None) -> None:
    from common.stores import reset_stores

    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid) as ann:
            ann.text += "kept across restarts"
        # When every client has left and the server restarts (new store clients,
        # a fresh handler)
        reset_stores()
        door = FakeDoor(CollaborationHandler())
        # Then a client that edited offline gets the stored text, and the server gets
        # its edits (its answer to the server's sync step 1)
        offline = Doc()
        offline.get("notes", type=Text).insert(0, "written offline")
        async with joined(door, sid, offline) as again:
            assert str(again.text) == "kept across restarts"
        async with joined(door, sid) as later:
            assert str(later.text) == "kept across restarts"
            assert str(later.doc.get("notes", type=Text)) == "written offline"

    run(scenario)


def test_awareness_is_relayed_kept_for_late_joiners_and_cleared_on_leave(stores: None) -> None:
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid) as ann, joined(door, sid) as bob:
            # Given ann's cursor and name, encoded by pycrdt's Awareness
            awareness = Awareness(ann.doc)
            awareness.set_local_state({"user": {"name": "ann"}, "cursor": 3})
            update = awareness.encode_awareness_update([ann.doc.client_id])
            await ann.channel.send(create_awareness_message(update))
            # Then bob receives it as it was sent
            await eventually(
                lambda: any(e.client_id == ann.doc.client_id for e in bob.awareness_seen())
            )
            seen = [e for e in bob.awareness_seen() if e.client_id == ann.doc.client_id][-1]
            assert '"name":"ann"' in seen.state
            # And a client joining later is told at once
            async with joined(door, sid) as cat:
                await eventually(
                    lambda: any(e.client_id == ann.doc.client_id for e in cat.awareness_seen())
                )
                # When ann leaves, the others hear she is gone
                await ann.channel.send(sync_update(b"\x00\x00"))  # harmless, ignored
                await door.leave(ann.conn)
                await eventually(
                    lambda: any(
                        e.client_id == ann.doc.client_id and e.gone for e in cat.awareness_seen()
                    )
                )
                gone = [e for e in cat.awareness_seen() if e.gone][-1]
                assert gone.clock == seen.clock + 1
                # And she is not announced to anyone who asks afterwards
                cat.channel.awareness.clear()
                await cat.channel.send(bytes([3]))  # messageQueryAwareness
                await asyncio.sleep(0.05)
                assert not any(e.client_id == ann.doc.client_id for e in cat.awareness_seen())

    run(scenario)


def test_a_lone_editor_gets_its_awareness_back(stores: None) -> None:
    """y-websocket reconnects after 30 s without a message; a lone editor's only
    traffic is its awareness renewal, so the server echoes it as y-websocket's does."""
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid) as ann:
            awareness = Awareness(ann.doc)
            awareness.set_local_state({"user": {"name": "ann"}})
            update = awareness.encode_awareness_update([ann.doc.client_id])
            ann.channel.awareness.clear()
            await ann.channel.send(create_awareness_message(update))
            await eventually(
                lambda: any(e.client_id == ann.doc.client_id for e in ann.awareness_seen())
            )

    run(scenario)


def test_another_keys_document_is_refused(stores: None) -> None:
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid):
            pass
        with pytest.raises(WsRefused) as refused:
            await door.handler.connect(door.open(sid, key=OTHER_KEY), door)
        assert refused.value.code == CLOSE_FORBIDDEN

    run(scenario)


def test_bad_frames_are_not_stored_and_repeated_ones_close_4400(stores: None) -> None:
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid) as ann:
            ann.text += "fine"
            await asyncio.sleep(0.05)
        conn = door.open(sid)
        await door.handler.connect(conn, door)
        for frame in (b"", b"\x07", sync_update(b"not an update"), b"\x00\x01\x05ab", "text"):
            await door.handler.receive(conn, frame, door)
        assert door.closed[conn.id] == CLOSE_BAD_MESSAGE
        async with joined(door, sid) as bob:
            assert str(bob.text) == "fine"

    run(scenario)


def test_a_base64_client_and_a_binary_client_share_a_document(stores: None) -> None:
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with (
            joined(door, sid, base64_frames=True) as ann,
            joined(door, sid) as bob,
        ):
            # Sync steps, updates and awareness from ann all go as base64 text
            ann.text += "from text frames "
            await eventually(lambda: str(bob.text) == "from text frames ")
            bob.text += "and binary ones"
            await eventually(lambda: str(ann.text) == "from text frames and binary ones")
            awareness = Awareness(ann.doc)
            awareness.set_local_state({"user": {"name": "ann"}})
            update = awareness.encode_awareness_update([ann.doc.client_id])
            await ann.channel.send(create_awareness_message(update))
            await eventually(
                lambda: any(e.client_id == ann.doc.client_id for e in bob.awareness_seen())
            )
        assert door.closed == {}

    run(scenario)


def test_bad_text_frames_close_4400_on_either_kind_of_connection(stores: None) -> None:
    sid = new_sid()
    good = base64.b64encode(sync_step1(b"\x00")).decode()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        # A binary connection: text frames, even good base64, are bad frames
        binary = door.open(sid)
        await door.handler.connect(binary, door)
        for _ in range(4):
            await door.handler.receive(binary, good, door)
        assert binary.id not in door.closed
        await door.handler.receive(binary, good, door)
        assert door.closed[binary.id] == CLOSE_BAD_MESSAGE
        # A base64 connection: text that is not base64, or base64 of no message
        text = door.open(sid, params={"frames": "base64"})
        await door.handler.connect(text, door)
        await door.handler.receive(text, good, door)  # a good one is answered
        assert text.id not in door.closed and not door.inboxes[text.id].empty()
        bad = ("not base64!", "AAA", "", base64.b64encode(b"\x07").decode(), "é")
        for frame in bad:
            await door.handler.receive(text, frame, door)
        assert door.closed[text.id] == CLOSE_BAD_MESSAGE
        # And an unknown frames value is refused at connect
        with pytest.raises(WsRefused) as refused:
            await door.handler.connect(door.open(sid, params={"frames": "hex"}), door)
        assert refused.value.code == CLOSE_BAD_MESSAGE and "frames" in refused.value.reason

    run(scenario)


def test_many_updates_are_compacted_into_the_snapshot(
    stores: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from common.stores.mongo import get_mongo

    monkeypatch.setattr(collaboration, "COMPACT_AFTER", 10)
    sid = new_sid()

    async def scenario() -> None:
        door = FakeDoor(CollaborationHandler())
        async with joined(door, sid) as ann:
            for i in range(25):
                ann.text += str(i % 10)
                await asyncio.sleep(0)
            await eventually(
                lambda: get_mongo()["collab_updates"].count_documents({"sid": sid}) < 10
            )
        # A connect compacts what is left over the threshold, never losing text
        expected = "".join(str(i % 10) for i in range(25))
        async with joined(door, sid) as bob:
            assert str(bob.text) == expected
        doc = get_mongo()["collab_documents"].find_one({"sid": sid})
        assert doc is not None and doc["version"] >= 1 and doc["key_id"] == str(KEY)

    run(scenario)


def test_frames_are_byte_for_byte_what_y_protocols_sends() -> None:
    doc = Doc()
    doc.get("text", type=Text).insert(0, "x")
    assert sync_step1(doc.get_state()) == create_sync_message(doc)
    assert sync_update(doc.get_update()) == create_update_message(doc.get_update())
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "ann"}})
    update = awareness.encode_awareness_update([doc.client_id])
    entries = parse_awareness(update)
    assert entries == [AwarenessEntry(doc.client_id, 1, '{"user":{"name":"ann"}}')]
    assert awareness_message(entries) == create_awareness_message(update)
