"""The API Gateway door, in-process: the WebSocket functions' Lambda handlers on the
run's real stores, the management API mocked by moto (which keeps what is posted to
each connection) and, for GoneException, botocore's Stubber."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from common.ws.base import CLOSE_NORMAL, WsConnection
from tests.utils.aws import mocked_aws
from tests.utils.lambda_events import FakeLambdaContext, http_event, response_json

DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
STAGE = "ws"
ENDPOINT = f"https://{DOMAIN}/{STAGE}"


def ws_event(
    route_key: str,
    conn_id: str,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """An event as API Gateway's WebSocket API sends it to a Lambda proxy integration."""
    kinds = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route_key,
            "eventType": kinds.get(route_key, "MESSAGE"),
            "connectionId": conn_id,
            "domainName": DOMAIN,
            "stage": STAGE,
            "apiId": "abc123",
            "requestId": uuid.uuid4().hex,
            "connectedAt": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if route_key == "$connect":
        event["headers"] = {"Host": DOMAIN, "Sec-WebSocket-Version": "13", **(headers or {})}
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event


def connect(conn_id: str, *, key: str | None = None, **query: str) -> dict[str, Any]:
    from functions.ws_connect.handler import handler

    headers = {"X-API-Key": key} if key else None
    return handler(ws_event("$connect", conn_id, headers=headers, query=query), FakeLambdaContext())


def message(conn_id: str, body: str) -> dict[str, Any]:
    from functions.ws_default.handler import handler

    return handler(ws_event("$default", conn_id, body=body), FakeLambdaContext())


def disconnect(conn_id: str) -> dict[str, Any]:
    from functions.ws_disconnect.handler import handler

    return handler(ws_event("$disconnect", conn_id), FakeLambdaContext())


def new_id() -> str:
    return uuid.uuid4().hex[:12] + "="  # API Gateway's ids look like "L0SM9cOFvHcCIhw="


@pytest.fixture
def aws(stores: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], list[Any]]]:
    """moto's management API; returns ``posted(conn_id)``: the JSON frames posted to it."""
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    from common.ws import aws as aws_door

    aws_door.reset_clients()
    with mocked_aws(monkeypatch):
        backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]

        def posted(conn_id: str) -> list[Any]:
            # moto keys connections by the id as it was in the URL (quoted), and
            # appends each post's data to the connection's: split it back into frames.
            found = backend.connections.get(quote(conn_id, safe=""))
            data = found.data.decode() if found is not None else ""
            frames, decoder, at = [], json.JSONDecoder(), 0
            while at < len(data):
                frame, at = decoder.raw_decode(data, at)
                frames.append(frame)
            return frames

        yield posted
    aws_door.reset_clients()


@pytest.fixture
def other_key(stores: None) -> str:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    return create_key(store=get_postgres(), name="pytest-other").key


def table() -> Any:
    from common.ws.connections import get_connection_table

    return get_connection_table()


def queued_job(api_key: str) -> str:
    from common.auth import authenticate
    from common.jobs import submit_job
    from common.stores.postgres import get_postgres

    principal = authenticate(api_key, store=get_postgres())
    return str(submit_job(kind="noop", input={}, principal=principal).job_id)


# -- $connect ------------------------------------------------------------------------


def test_connect_with_the_header_registers_the_connection_beyond_two_hours(
    aws: Any, api_key: str
) -> None:
    # Given a valid key in the X-API-Key header
    conn_id = new_id()
    # When the client connects to the monitoring stream
    response = connect(conn_id, key=api_key, path="/ws/monitoring/stream")
    # Then it is accepted, and the table holds it with a TTL above API Gateway's 2 hours
    assert response["statusCode"] == 200, response
    conn = table().get(conn_id)
    assert conn is not None and conn.route == "monitoring" and conn.sid is None
    assert conn.door == "aws" and table().endpoint(conn_id) == ENDPOINT
    assert 7200 < table().ttl(conn_id) <= 7800
    assert conn_id in table().members("monitoring", None)


def test_connect_with_the_query_parameter_never_keeps_the_key(aws: Any, api_key: str) -> None:
    conn_id = new_id()
    response = connect(conn_id, api_key=api_key, path="/ws/monitoring/stream", since="0")
    assert response["statusCode"] == 200, response
    conn = table().get(conn_id)
    assert conn is not None and conn.params == {"since": "0"}
    raw = table().redis.client.hgetall(table().redis.key("ws", "conn", conn_id))
    assert api_key.encode() not in b"".join(raw.values())


@pytest.mark.parametrize(
    ("key", "query", "status", "reason"),
    [
        (None, {"path": "/ws/monitoring/stream"}, 401, "missing API key"),
        ("ao_wrongkey_" + "x" * 40, {"path": "/ws/monitoring/stream"}, 401, "invalid API key"),
        ("VALID", {"path": "/ws/nowhere"}, 404, "no WebSocket route"),
        ("VALID", {"path": "/ws/jobs/not-a-uuid"}, 404, "no job"),
        ("VALID", {"path": f"/ws/jobs/{uuid.uuid4()}"}, 404, "no job"),
        ("VALID", {"path": "/ws/monitoring/stream", "since": "x"}, 400, "since"),
    ],
    ids=["no-key", "wrong-key", "no-route", "bad-job-id", "unknown-job", "bad-since"],
)
def test_a_refused_connect_is_the_mirrored_http_status_with_the_reason(
    aws: Any, api_key: str, key: str | None, query: dict[str, str], status: int, reason: str
) -> None:
    conn_id = new_id()
    response = connect(conn_id, key=api_key if key == "VALID" else key, **query)
    assert response["statusCode"] == status, response
    assert reason in response["body"]
    assert table().get(conn_id) is None


def test_another_keys_job_is_refused_like_a_missing_one(
    aws: Any, api_key: str, other_key: str
) -> None:
    job_id = queued_job(api_key)
    response = connect(new_id(), key=other_key, path=f"/ws/jobs/{job_id}")
    assert response["statusCode"] == 404 and f"no job {job_id}" in response["body"]


class SessionHandler:
    """A route with a sid, as terminal and collaboration are (not needed to exist here)."""

    route = "session"
    path = "/ws/session/{sid}"
    local_only = False

    async def connect(self, conn: WsConnection, out: Any) -> None:
        await out.send(conn, {"type": "hello", "sid": conn.sid})

    async def receive(self, conn: WsConnection, message: str | bytes, out: Any) -> None:
        await out.send(conn, {"type": "echo", "message": message})

    async def disconnect(self, conn: WsConnection, out: Any) -> None: ...


class PtyHandler(SessionHandler):
    route = "pty"
    path = "/ws/pty/{sid}"
    local_only = True


@pytest.fixture
def door(aws: Any) -> Any:
    """The AWS door with two more routes: a sid route and a local-only one."""
    from common.stores.redis_store import get_redis
    from common.ws.aws import AwsDoor, Poster
    from common.ws.connections import get_connection_table
    from common.ws.events import get_event_log
    from common.ws.registry import BUILTIN, Registry, build_registry

    registry = Registry([*build_registry(BUILTIN, ()).handlers, SessionHandler(), PtyHandler()])
    return AwsDoor(
        registry=registry,
        redis=get_redis(),
        table=get_connection_table(),
        events=get_event_log(),
        poster=Poster(),
    )


def test_a_sid_belongs_to_the_first_key_and_another_key_is_refused(
    door: Any, aws: Any, api_key: str, other_key: str
) -> None:
    from common.ws.aws import _run

    sid = uuid.uuid4().hex
    first, second, third = new_id(), new_id(), new_id()
    ok = _run(
        door.connect(
            ws_event(
                "$connect",
                first,
                query={"path": f"/ws/session/{sid}"},
                headers={"x-api-key": api_key},
            )
        )
    )
    again = _run(
        door.connect(
            ws_event(
                "$connect",
                third,
                query={"path": f"/ws/session/{sid}"},
                headers={"x-api-key": api_key},
            )
        )
    )
    refused = _run(
        door.connect(
            ws_event(
                "$connect",
                second,
                query={"path": f"/ws/session/{sid}"},
                headers={"x-api-key": other_key},
            )
        )
    )
    assert ok["statusCode"] == 200 and again["statusCode"] == 200
    assert refused == {"statusCode": 403, "body": f"session {sid} belongs to another API key"}
    # What the handler sent while connecting waits for the client's first frame
    assert aws(first) == []
    _run(door.message(ws_event("$default", first, body='{"action":"sync"}')))
    _run(door.message(ws_event("$default", first, body="hi")))
    assert aws(first) == [{"type": "hello", "sid": sid}, {"type": "echo", "message": "hi"}]


def test_a_local_only_route_is_refused_with_503_and_why(door: Any, api_key: str) -> None:
    from common.ws.aws import _run

    response = _run(
        door.connect(
            ws_event(
                "$connect", new_id(), query={"path": "/ws/pty/s1"}, headers={"X-API-Key": api_key}
            )
        )
    )
    assert response["statusCode"] == 503
    assert "long-lived process" in response["body"] and "local server" in response["body"]


# -- messages ------------------------------------------------------------------------


def test_monitoring_gets_the_latest_sample_then_each_tick(
    aws: Any, api_key: str, set_env: Callable[..., None]
) -> None:
    from functions.ws_monitor_tick.handler import handler as tick

    set_env(MONITOR_PERSIST_SECONDS="0.01")  # persist every tick here
    # Given a sample already taken, and a client connected to the stream
    first = tick({}, FakeLambdaContext())
    conn_id = new_id()
    assert connect(conn_id, key=api_key, path="/ws/monitoring/stream")["statusCode"] == 200
    # When the client sends its first frame, and the schedule ticks again
    assert message(conn_id, '{"action":"sync"}') == {"statusCode": 200}
    time.sleep(0.02)
    second = tick({}, FakeLambdaContext())
    # Then it got the latest sample at once, then the new one, numbered in order
    frames = aws(conn_id)
    assert [f["seq"] for f in frames] == [first["seq"], second["seq"]]
    assert second["seq"] > first["seq"]
    sample = frames[-1]
    assert {"ts", "host", "requests", "jobs", "cache", "model"} <= set(sample)
    assert sample["interval_ms"] == 60_000  # the schedule's rate on AWS
    assert sample["jobs"]["queued"] is not None and sample["host"]["memory"] is not None
    # And GET /api/metrics has it as the latest, and the persisted ones in its window
    from functions.metrics_get.handler import handler as metrics_get

    response = metrics_get(
        http_event("GET", "/api/metrics", headers={"X-API-Key": api_key}, query="minutes=5"),
        FakeLambdaContext(),
    )
    body = response_json(response)
    assert response["statusCode"] == 200, body
    assert body["latest"]["seq"] == second["seq"]
    assert body["window"]["minutes"] == 5 and len(body["window"]["samples"]) >= 2
    assert body["window"]["samples"][-1]["host"]["memory"]["percent"] >= 0


def test_a_job_connection_gets_the_jobs_state_on_its_first_frame(aws: Any, api_key: str) -> None:
    job_id = queued_job(api_key)
    conn_id = new_id()
    assert connect(conn_id, key=api_key, path=f"/ws/jobs/{job_id}")["statusCode"] == 200
    message(conn_id, '{"action":"sync"}')
    frames = aws(conn_id)
    assert frames[-1]["type"] == "state" and frames[-1]["job"]["id"] == job_id
    assert frames[-1]["job"]["status"] in ("queued", "running", "succeeded")


class Recording:
    """A Poster that keeps what it was asked to do (moto forgets a deleted connection's data)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def post(self, endpoint: str, conn_id: str, data: Any) -> bool:
        self.calls.append(("post", conn_id, json.loads(data)))
        return True

    def delete(self, endpoint: str, conn_id: str) -> None:
        self.calls.append(("delete", conn_id, None))


def test_a_job_connection_is_closed_with_1000_after_the_final_state(
    door: Any, api_key: str
) -> None:
    from uuid import UUID

    from common.auth import authenticate
    from common.jobs import cancel_job
    from common.stores.postgres import get_postgres
    from common.ws.aws import _run

    # Given a job that has ended (cancelled while queued)
    job_id = queued_job(api_key)
    cancel_job(UUID(job_id), principal=authenticate(api_key, store=get_postgres()))
    door.poster = recording = Recording()
    conn_id = new_id()
    # When its owner connects and sends its first frame
    query = {"path": f"/ws/jobs/{job_id}"}
    headers = {"X-API-Key": api_key}
    assert _run(door.connect(ws_event("$connect", conn_id, query=query, headers=headers))) == {
        "statusCode": 200
    }
    _run(door.message(ws_event("$default", conn_id, body='{"action":"sync"}')))
    # Then it gets the final state, our close frame, and API Gateway closes the socket
    state, close, delete = recording.calls[-3:]
    assert state[2]["type"] == "state" and state[2]["job"]["status"] == "cancelled"
    assert close[2] == {"type": "close", "code": CLOSE_NORMAL, "reason": "job cancelled"}
    assert delete == ("delete", conn_id, None)
    assert table().get(conn_id) is None


def test_disconnect_removes_the_connection(aws: Any, api_key: str) -> None:
    conn_id = new_id()
    connect(conn_id, key=api_key, path="/ws/monitoring/stream")
    assert disconnect(conn_id) == {"statusCode": 200}
    assert table().get(conn_id) is None
    assert conn_id not in table().members("monitoring", None)


def test_a_frame_from_an_unknown_connection_closes_it(door: Any) -> None:
    from common.ws.aws import _run

    door.poster = recording = Recording()
    conn_id = new_id()  # never connected (or expired from the table)
    assert _run(door.message(ws_event("$default", conn_id, body="hello"))) == {"statusCode": 200}
    reason = "unknown connection: connect again"
    assert recording.calls == [
        ("post", conn_id, {"type": "close", "code": 4404, "reason": reason}),
        ("delete", conn_id, None),
    ]


# -- posting -------------------------------------------------------------------------


def registered(conn_id: str, api_key_id: uuid.UUID) -> WsConnection:
    conn = WsConnection(
        id=conn_id,
        key_id=api_key_id,
        route="monitoring",
        sid=None,
        connected_at=time.time(),
        door="aws",
    )
    table().add(conn, endpoint=ENDPOINT)
    return conn


def test_a_gone_connection_is_removed_from_the_table(aws: Any) -> None:
    import boto3
    from botocore.stub import Stubber

    from common.ws.aws import AwsOutbox, Poster, _run
    from common.ws.events import get_event_log

    # Given a connection in the table that API Gateway has already dropped
    conn = registered(new_id(), uuid.uuid4())
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error(
        "post_to_connection",
        service_error_code="GoneException",
        service_message="",
        http_status_code=410,
    )
    out = AwsOutbox(table=table(), events=get_event_log(), poster=Poster(lambda _: client))
    # When something is posted to it
    with stubber:
        delivered = _run(out.send(conn, {"type": "hello"}))
    # Then the post reports it gone, and it is out of the table and its members set
    assert delivered is False
    stubber.assert_no_pending_responses()
    assert table().get(conn.id) is None
    assert conn.id not in table().members("monitoring", None)


def test_another_client_error_loses_the_frame_but_keeps_the_connection(aws: Any) -> None:
    import boto3
    from botocore.stub import Stubber

    from common.ws.aws import AwsOutbox, Poster, _run
    from common.ws.events import get_event_log

    conn = registered(new_id(), uuid.uuid4())
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error(
        "post_to_connection", service_error_code="LimitExceededException", http_status_code=429
    )
    out = AwsOutbox(table=table(), events=get_event_log(), poster=Poster(lambda _: client))
    with stubber:
        _run(out.send(conn, {"type": "hello"}))
    assert table().get(conn.id) is not None


def test_a_300_kb_message_is_posted_as_parts_under_128_kb(aws: Any) -> None:
    from common.ws.aws import AwsOutbox, Poster, _run, management_client
    from common.ws.events import get_event_log
    from common.ws.frames import MAX_FRAME_BYTES, Reassembler, dumps

    conn = registered(new_id(), uuid.uuid4())
    sizes: list[int] = []

    class Spy:
        """The moto client, counting each post's size."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.exceptions = inner.exceptions

        def post_to_connection(self, **kwargs: Any) -> Any:
            sizes.append(len(kwargs["Data"]))
            return self.inner.post_to_connection(**kwargs)

    out = AwsOutbox(
        table=table(),
        events=get_event_log(),
        poster=Poster(lambda endpoint: Spy(management_client(endpoint))),
    )
    big = {"type": "state", "data": "é" + "x" * 300_000}
    assert _run(out.send(conn, big)) is True
    assert len(sizes) == 3 and max(sizes) <= MAX_FRAME_BYTES
    reassembler = Reassembler()
    joined = [reassembler.feed(dumps(f)) for f in aws(conn.id)]
    assert joined[-1] is not None and json.loads(joined[-1]) == big


# -- the shared editor in base64 text frames ---------------------------------------------


@pytest.fixture
def posts(aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str | bytes]]:
    """Every frame posted to each connection, as the door handed it over (text or
    bytes), on its way to moto's management API."""
    from common.ws.aws import Poster

    frames: dict[str, list[str | bytes]] = {}
    original = Poster.post

    def post(self: Poster, endpoint: str, conn_id: str, data: str | bytes) -> bool:
        frames.setdefault(conn_id, []).append(data)
        return original(self, endpoint, conn_id, data)

    monkeypatch.setattr(Poster, "post", post)
    return frames


class GatewayEditor:
    """A y-websocket client behind API Gateway with ``frames=base64``: a pycrdt document
    whose messages go through the WebSocket functions as base64 text frames."""

    def __init__(self, posts: dict[str, list[str | bytes]], api_key: str, sid: str) -> None:
        from pycrdt import Doc, Text

        self.posts, self.conn_id, self.read = posts, new_id(), 0
        self.doc: Any = Doc()
        self.text = self.doc.get("text", type=Text)
        self.awareness: list[Any] = []  # AwarenessEntry seen
        self.closes: list[dict[str, Any]] = []
        response = connect(
            self.conn_id, key=api_key, path=f"/ws/collaboration/{sid}", frames="base64"
        )
        assert response["statusCode"] == 200, response

    def send(self, data: bytes) -> None:
        assert message(self.conn_id, base64.b64encode(data).decode()) == {"statusCode": 200}

    def sync(self) -> None:
        """Sync step 1, as y-websocket sends it on open (its first frame)."""
        from pycrdt import create_sync_message

        self.send(create_sync_message(self.doc))

    def edit(self, text: str) -> None:
        from pycrdt import create_update_message

        before = self.doc.get_state()
        self.text += text
        self.send(create_update_message(self.doc.get_update(before)))

    def pump(self) -> None:
        """Read what was posted since the last call, answering as y-websocket does."""
        from pycrdt import handle_sync_message

        from common.ws.yprotocol import MESSAGE_AWARENESS, MESSAGE_SYNC, parse_awareness
        from common.ws.yprotocol import parse_message as parse

        while self.read < len(self.posts.get(self.conn_id, [])):
            frame = self.posts[self.conn_id][self.read]
            self.read += 1
            assert isinstance(frame, str), "a frames=base64 connection gets text only"
            if frame.startswith("{"):
                self.closes.append(json.loads(frame))
                continue
            data = base64.b64decode(frame, validate=True)
            if data[0] == MESSAGE_SYNC:
                reply = handle_sync_message(data[1:], self.doc)
                if reply is not None:
                    self.send(reply)
            elif data[0] == MESSAGE_AWARENESS:
                self.awareness += parse_awareness(parse(data).payload)


def test_two_editors_sync_a_document_and_awareness_in_base64_text_frames(
    posts: dict[str, list[str | bytes]], api_key: str
) -> None:
    from pycrdt import Awareness, create_awareness_message

    sid = f"doc-{uuid.uuid4().hex[:8]}"
    # Given two editors behind API Gateway in base64 text mode, and a binary listener
    ann, bob = GatewayEditor(posts, api_key, sid), GatewayEditor(posts, api_key, sid)
    cat = new_id()
    assert connect(cat, key=api_key, path=f"/ws/collaboration/{sid}")["statusCode"] == 200
    kept = table().get(ann.conn_id)
    assert kept is not None and kept.params == {"frames": "base64"}
    # Nothing is posted before the first frame; y-websocket's sync step 1 is that frame
    assert posts.get(ann.conn_id) is None
    ann.sync()
    bob.sync()
    ann.pump()
    bob.pump()
    # When ann edits, bob gets the update; and bob's edit reaches ann
    ann.edit("hello ")
    bob.pump()
    assert str(bob.text) == "hello "
    bob.edit("from the gateway")
    ann.pump()
    assert str(ann.text) == str(bob.text) == "hello from the gateway"
    # The binary listener got the same updates as bytes: each connection as it asked
    assert posts[cat] and all(isinstance(f, bytes) for f in posts[cat])
    # A third editor joining later gets the stored text from its sync
    late = GatewayEditor(posts, api_key, sid)
    late.sync()
    late.pump()
    assert str(late.text) == "hello from the gateway"
    # Awareness: ann's name reaches the others, and a late joiner is told at once
    awareness = Awareness(bob.doc)
    awareness.set_local_state({"user": {"name": "bob", "color": "#2457c5"}})
    bob.send(create_awareness_message(awareness.encode_awareness_update([bob.doc.client_id])))
    ann.pump()
    seen = [e for e in ann.awareness if e.client_id == bob.doc.client_id]
    assert seen and '"name":"bob"' in seen[-1].state
    again = GatewayEditor(posts, api_key, sid)
    again.sync()
    again.pump()
    assert any(e.client_id == bob.doc.client_id for e in again.awareness)
    # When bob leaves, the others are told his client is gone
    assert disconnect(bob.conn_id) == {"statusCode": 200}
    ann.pump()
    gone = [e for e in ann.awareness if e.client_id == bob.doc.client_id and e.gone]
    assert gone and gone[-1].clock == seen[-1].clock + 1
    assert ann.closes == [] and late.closes == []


def test_bad_frames_close_a_gateway_editor_with_4400(
    posts: dict[str, list[str | bytes]], api_key: str
) -> None:
    from pycrdt import Doc, create_sync_message

    sid = f"doc-{uuid.uuid4().hex[:8]}"
    step1 = base64.b64encode(create_sync_message(Doc())).decode()
    # A connection without frames=base64 cannot send text, not even good base64
    binary = new_id()
    assert connect(binary, key=api_key, path=f"/ws/collaboration/{sid}")["statusCode"] == 200
    for _ in range(5):
        message(binary, step1)
    close = json.loads(posts[binary][-1])
    assert close["type"] == "close" and close["code"] == 4400
    assert "frames=base64" in close["reason"] and table().get(binary) is None
    # A base64 connection: text that is not base64, or base64 of no message
    text = GatewayEditor(posts, api_key, sid)
    text.sync()
    text.pump()
    assert text.closes == [] and str(text.text) == ""
    for frame in ("not base64!", "AAA", base64.b64encode(b"\x07").decode(), "é", "AA=A"):
        assert message(text.conn_id, frame) == {"statusCode": 200}
    text.pump()
    assert [c["code"] for c in text.closes] == [4400]
    assert table().get(text.conn_id) is None
    # And an unknown frames value is refused at connect
    refused = connect(new_id(), key=api_key, path=f"/ws/collaboration/{sid}", frames="hex")
    assert refused["statusCode"] == 400 and "frames" in refused["body"]
