"""The live pages behind API Gateway's form of the sockets, as CloudFront serves them.

There is no API Gateway here: /config.json (what `make deploy-console` uploads) is
answered by the browser, and so are the sockets, whose URLs are what is checked:
``/ws?...&path=/ws/<route>``, the key as ``api_key``, the first frame a sync; and
the shared editor's y-websocket messages as base64 text frames (``frames=base64``),
since API Gateway refuses binary frames from clients.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_editor import text_of

GATEWAY = re.compile(r"^ws://[^/]+/ws\?")


def as_gateway(console: ConsolePage) -> list[dict[str, Any]]:
    """Serve the AWS config and answer gateway sockets; each socket's URL and frames."""
    sockets: list[dict[str, Any]] = []
    console.page.route(
        "**/config.json",
        lambda route: route.fulfill(json={"door": "aws", "socketBase": "/ws"}),
    )

    def accept(ws: Any) -> None:
        seen: dict[str, Any] = {"url": ws.url, "frames": [], "ws": ws}
        ws.on_message(lambda message: seen["frames"].append(message))
        sockets.append(seen)

    console.page.route_web_socket(GATEWAY, accept)
    return sockets


def wait_for(console: ConsolePage, condition: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        # Not time.sleep: Playwright's sync API runs the socket handlers while it waits.
        console.page.wait_for_timeout(50)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_monitor_behind_the_gateway_asks_by_path_and_syncs_first(
    console: ConsolePage, api_key: str
) -> None:
    sockets = as_gateway(console)
    console.sign_in(api_key, then="/monitor.html")
    wait_for(console, lambda: sockets and sockets[0]["frames"])
    # The route is in the query, with the key; the first frame asks for the replay
    query = query_of(sockets[0]["url"])
    assert query["path"] == "/ws/monitoring/stream"
    assert query["api_key"] == api_key
    assert json.loads(sockets[0]["frames"][0]) == {"action": "sync"}
    # A sample that arrives is drawn
    ts = round(time.time() + 5, 3)
    sample = {"seq": 1, "type": "sample", "ts": ts, "host": {"cpu_percent": 42.0}}
    sockets[0]["ws"].send(json.dumps(sample))
    console.page.wait_for_function(
        f"document.querySelector('#chart-cpu').dataset.lastTs === '{ts}'"
    )
    # API Gateway cannot close with a code: a close frame says it, and the page reads it
    sockets[0]["ws"].send(json.dumps({"type": "close", "code": 4401, "reason": "bad key"}))
    console.page.locator("#status[data-state=closed]").wait_for()
    assert "4401" in console.page.inner_text("#message")


def test_editor_behind_the_gateway_puts_the_room_at_the_end_of_the_path(
    console: ConsolePage, api_key: str
) -> None:
    sockets = as_gateway(console)
    sid = f"doc-{uuid.uuid4().hex[:8]}"
    console.sign_in(api_key, then=f"/editor.html?sid={sid}")
    wait_for(console, lambda: sockets)
    query = query_of(sockets[0]["url"])
    assert query == {"frames": "base64", "api_key": api_key, "path": f"/ws/collaboration/{sid}"}
    assert sockets[0]["url"].endswith(f"/{sid}")  # y-websocket's room ends the path


def decoded(frames: list[Any]) -> list[bytes]:
    """The page's frames: each must be a text frame holding base64."""
    assert all(isinstance(frame, str) for frame in frames), "the page sent a binary frame"
    return [base64.b64decode(frame, validate=True) for frame in frames]


def test_editor_behind_the_gateway_speaks_base64_text_frames(
    console: ConsolePage, api_key: str
) -> None:
    from pycrdt import Doc, Text, handle_sync_message

    from common.ws.frames import as_text, dumps, split_frame
    from common.ws.yprotocol import (
        MESSAGE_AWARENESS,
        MESSAGE_SYNC,
        SYNC_STEP1,
        AwarenessEntry,
        awareness_message,
        parse_awareness,
        parse_message,
        sync_step1,
        sync_update,
    )

    sockets = as_gateway(console)
    sid = f"doc-{uuid.uuid4().hex[:8]}"
    console.sign_in(api_key, then=f"/editor.html?sid={sid}")
    # Given the page's socket behind the (fake) gateway: it opened with frames=base64
    # and sent y-websocket's sync step 1 and its awareness, as base64 text frames
    wait_for(console, lambda: sockets and len(sockets[0]["frames"]) >= 2)
    socket = sockets[0]
    assert query_of(socket["url"])["frames"] == "base64"
    first, *rest = decoded(socket["frames"])
    assert parse_message(first).kind == MESSAGE_SYNC and parse_message(first).step == SYNC_STEP1
    sent_awareness = [parse_message(m) for m in rest if m[0] == MESSAGE_AWARENESS]
    assert sent_awareness and '"user"' in parse_awareness(sent_awareness[0].payload)[0].state

    # When the server answers in base64 text: its state (step 2) and its step 1
    server = Doc()
    text = server.get("text", type=Text)
    text += "hello from the gateway\n"
    reply = handle_sync_message(first[1:], server)
    assert reply is not None
    socket["ws"].send(as_text(reply))
    socket["ws"].send(as_text(sync_step1(server.get_state())))
    # Then the editor is synced and shows the text
    console.page.locator("#editor .cm-content[data-synced=true]").wait_for()
    wait_for(console, lambda: "hello from the gateway" in text_of(console))
    # And the page answered the server's step 1 in text too (its step 2)
    wait_for(console, lambda: len(decoded(socket["frames"])) > len(rest) + 1)

    # A message over API Gateway's 128 KB limit comes as parts to join (small ones here)
    before = server.get_state()
    text += "second line " + "z" * 400
    parts = split_frame(sync_update(server.get_update(before)), limit=300)
    assert len(parts) > 2 and all(isinstance(part, str) for part in parts)
    for part in parts:
        socket["ws"].send(part)
    wait_for(console, lambda: "second line " + "z" * 400 in text_of(console))

    # When a person types, the update goes out as base64 text and the server can apply it
    console.page.click("#editor .cm-content")
    console.page.keyboard.press("Control+End")
    console.page.keyboard.type("typed at the gateway")

    def server_has_it() -> bool:
        for message in decoded(socket["frames"]):
            if message[0] == MESSAGE_SYNC:
                handle_sync_message(message[1:], server)
        return "typed at the gateway" in str(text)

    wait_for(console, server_has_it)

    # Another person's awareness, relayed by the server, is listed
    greta = {"user": {"name": "Gateway Greta", "color": "#b42318", "colorLight": "#b4231833"}}
    entry = AwarenessEntry(424_242, 1, dumps(greta))
    socket["ws"].send(as_text(awareness_message([entry])))
    console.page.locator("#people li", has_text="Gateway Greta").wait_for()

    # API Gateway closes with a code by a close frame: the page says it and stops
    socket["ws"].send(json.dumps({"type": "close", "code": 4403, "reason": "another key"}))
    console.page.locator("#status[data-state=closed]").wait_for()
    assert "4403" in console.page.inner_text("#message")


def test_terminal_behind_the_gateway_says_it_runs_locally_only(
    console: ConsolePage, api_key: str
) -> None:
    sockets = as_gateway(console)
    console.sign_in(api_key, then="/terminal.html?sid=t-aws")
    console.page.locator("#status[data-state=closed]").wait_for()
    assert "local server only" in console.page.inner_text("#message")
    assert sockets == []
