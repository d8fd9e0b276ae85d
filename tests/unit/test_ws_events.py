"""Numbered events: replay after ``since`` and live delivery meet without a gap or a
duplicate, through the local door's hub (with a fake event log and fake sockets)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from common.ws.admission import Admitted
from common.ws.base import CLOSE_BAD_MESSAGE, WsConnection, WsRefused
from common.ws.events import Cursor, Event, parse_since
from common.ws.hub import Hub
from common.ws.protocol import SyncRequest, http_status, sync_request

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()  # not asyncio.run: it unsets the thread's loop
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


class FakeRedis:
    prefix = "t:"

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


class FakeEventLog:
    """The EventLog's numbering and replay, in memory, bounded like the stream."""

    def __init__(self, maxlen: int = 1000) -> None:
        self.redis = FakeRedis()
        self.maxlen = maxlen
        self.ttl_s = 60
        self.streams: dict[tuple[str, str | None], list[Event]] = {}
        self.replay_started = asyncio.Event()
        self.release_replay: asyncio.Event | None = None

    def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        stream = self.streams.setdefault((route, sid), [])
        seq = (stream[-1].seq if stream else 0) + 1
        stream.append(Event(seq, json.dumps({"seq": seq, **event})))
        del stream[: -self.maxlen]
        return seq

    def replay(self, route: str, sid: str | None, since: int | None, last: int) -> list[Event]:
        stream = list(self.streams.get((route, sid), []))
        if since is not None:
            return [e for e in stream if e.seq > since]
        return stream[-last:] if last else []


class FakeTable:
    def add(self, conn: WsConnection, **_: Any) -> None: ...

    def remove(self, conn_id: str) -> None: ...


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str | None] | None = None
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()

    async def send_text(self, data: str) -> None:
        self.sent.append(data)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)
        self.inbox.put_nowait(None)

    async def receive(self) -> str | bytes | None:
        return await self.inbox.get()

    def seqs(self) -> list[int]:
        return [json.loads(s)["seq"] for s in self.sent if isinstance(s, str) and '"seq"' in s]


class StreamHandler:
    route = "demo"
    path = "/ws/demo/{sid}"
    local_only = False
    replay_without_since = 0

    async def connect(self, conn: WsConnection, out: Any) -> None: ...

    async def receive(self, conn: WsConnection, message: str | bytes, out: Any) -> None:
        await out.send(conn, {"echo": message})

    async def disconnect(self, conn: WsConnection, out: Any) -> None: ...


def conn(sid: str = "s1") -> WsConnection:
    return WsConnection(
        id=uuid.uuid4().hex, key_id=uuid.uuid4(), route="demo", sid=sid, connected_at=0.0
    )


async def settle() -> None:
    # The replay is read in a worker thread: give it real time, not only loop turns.
    for _ in range(5):
        await asyncio.sleep(0.01)


def test_a_cursor_lets_each_seq_through_once_and_in_order() -> None:
    cursor = Cursor(last=3)
    events = [Event(s, "") for s in (5, 4, 3, 6, 5, 2)]
    assert [e.seq for e in cursor.take(events)] == [4, 5, 6]
    assert not cursor.admit(6) and cursor.admit(7)


@pytest.mark.parametrize("value", ["-1", "x", "1.5", " 3"])
def test_since_must_be_a_seq(value: str) -> None:
    with pytest.raises(WsRefused) as refused:
        parse_since(value)
    assert refused.value.code == CLOSE_BAD_MESSAGE
    assert parse_since(None) is None and parse_since("0") == 0 and parse_since("42") == 42


def test_sync_requests_are_the_doors_and_everything_else_the_routes() -> None:
    assert sync_request('{"action":"sync"}') == SyncRequest(None)
    assert sync_request('{"action": "sync", "since": 7}') == SyncRequest(7)
    assert sync_request('{"action": "sync", "since": -1}') == SyncRequest(None)
    assert sync_request('{"action": "type", "data": "sync"}') is None
    assert sync_request(b'{"action":"sync"}') is None
    assert sync_request("sync") is None


def test_refusals_behind_api_gateway_are_the_mirrored_http_status() -> None:
    assert [http_status(c) for c in (4400, 4401, 4403, 4404, 4429, 4503)] == [
        400,
        401,
        403,
        404,
        429,
        503,
    ]
    assert http_status(1011) == 500


def test_reconnecting_with_since_gets_what_was_missed_then_live_without_duplicates() -> None:
    async def main() -> None:
        # Given a session with 5 events, a client that saw up to seq 2
        events = FakeEventLog()
        hub = Hub(events=events, table=FakeTable(), redis_url="")  # type: ignore[arg-type]
        for i in range(5):
            events.publish("demo", "s1", {"n": i})
        socket = FakeSocket()
        client = conn()
        admitted = Admitted(StreamHandler(), client, since=2)
        # When it reconnects with since=2, and two live events arrive meanwhile, one of
        # which (seq 5) is in the replay too
        task = asyncio.ensure_future(hub.serve(admitted, socket, socket.receive))
        await asyncio.sleep(0)
        hub.deliver("demo", "s1", events.streams[("demo", "s1")][-1])  # seq 5, buffered
        await settle()
        seq = events.publish("demo", "s1", {"n": 5})
        hub.deliver("demo", "s1", events.streams[("demo", "s1")][-1])  # seq 6, live
        await settle()
        # Then it gets 3..6, once each, in order
        assert socket.seqs() == [3, 4, 5, 6] and seq == 6
        socket.inbox.put_nowait(None)
        await task
        assert client.id not in hub.connections

    run(main())


def test_events_buffered_during_the_replay_are_sent_after_it() -> None:
    async def main() -> None:
        events = FakeEventLog()
        hub = Hub(events=events, table=FakeTable(), redis_url="")  # type: ignore[arg-type]
        for i in range(3):
            events.publish("demo", "s1", {"n": i})
        socket = FakeSocket()
        local = hub.attach(conn(), socket, StreamHandler())  # buffering from here
        for i in range(3, 6):
            events.publish("demo", "s1", {"n": i})
            hub.deliver("demo", "s1", events.streams[("demo", "s1")][-1])
        assert socket.sent == []  # nothing goes out before the replay
        await hub.catch_up(local, 0, 0)
        await settle()
        assert socket.seqs() == [1, 2, 3, 4, 5, 6]

    run(main())


def test_a_sync_request_replays_again_and_other_frames_reach_the_route() -> None:
    async def main() -> None:
        events = FakeEventLog()
        hub = Hub(events=events, table=FakeTable(), redis_url="")  # type: ignore[arg-type]
        for i in range(4):
            events.publish("demo", "s1", {"n": i})
        socket = FakeSocket()
        task = asyncio.ensure_future(
            hub.serve(Admitted(StreamHandler(), conn(), since=None), socket, socket.receive)
        )
        await settle()
        assert socket.sent == []  # replay_without_since = 0: nothing old without since
        socket.inbox.put_nowait('{"action":"sync","since":2}')
        socket.inbox.put_nowait("hello")
        await settle()
        assert socket.seqs() == [3, 4]
        assert json.loads(socket.sent[-1]) == {"echo": "hello"}
        socket.inbox.put_nowait(None)
        await task

    run(main())


def test_a_route_refusing_closes_with_its_code_and_reason() -> None:
    class Refusing(StreamHandler):
        async def connect(self, conn: WsConnection, out: Any) -> None:
            raise WsRefused(4403, "session s1 belongs to another API key")

    async def main() -> None:
        hub = Hub(events=FakeEventLog(), table=FakeTable(), redis_url="")  # type: ignore[arg-type]
        socket = FakeSocket()
        await hub.serve(Admitted(Refusing(), conn(), since=None), socket, socket.receive)
        assert socket.closed == (4403, "session s1 belongs to another API key")

    run(main())


def test_a_client_that_cannot_keep_up_is_closed_not_waited_for() -> None:
    async def main() -> None:
        from common.ws import hub as hub_module

        events = FakeEventLog(maxlen=5000)
        hub = Hub(events=events, table=FakeTable(), redis_url="")  # type: ignore[arg-type]

        class Stuck(FakeSocket):
            async def send_text(self, data: str) -> None:
                await asyncio.Event().wait()  # never returns

        slow, fast = Stuck(), FakeSocket()
        slow_local = hub.attach(conn(), slow, StreamHandler())
        fast_local = hub.attach(conn(), fast, StreamHandler())
        slow_local.buffer = fast_local.buffer = None
        for i in range(hub_module.QUEUE_FRAMES + 10):
            events.publish("demo", "s1", {"n": i})
            hub.deliver("demo", "s1", events.streams[("demo", "s1")][-1])
            if i % 100 == 0:
                await settle()
        await settle()
        assert slow.closed is not None and slow.closed[0] == 1001
        assert len(fast.seqs()) == hub_module.QUEUE_FRAMES + 10
        for local in (slow_local, fast_local):
            await hub.detach(local.conn.id)

    run(main())
