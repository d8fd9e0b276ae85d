"""The live pages behind API Gateway's form of the sockets, as CloudFront serves them.

There is no API Gateway here: /config.json (what `make deploy-console` uploads) is
answered by the browser, and so are the sockets, whose URLs are what is checked:
``/ws?...&path=/ws/<route>``, the key as ``api_key``, the first frame a sync.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.e2e.browser.conftest import ConsolePage

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
    assert query == {"api_key": api_key, "path": f"/ws/collaboration/{sid}"}


def test_terminal_behind_the_gateway_says_it_runs_locally_only(
    console: ConsolePage, api_key: str
) -> None:
    sockets = as_gateway(console)
    console.sign_in(api_key, then="/terminal.html?sid=t-aws")
    console.page.locator("#status[data-state=closed]").wait_for()
    assert "local server only" in console.page.inner_text("#message")
    assert sockets == []
