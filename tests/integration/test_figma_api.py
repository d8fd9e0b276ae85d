"""POST /api/figma/analyze through the Lambda door, on real stores (Mongo, GridFS, PG, Redis)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.figma.fake_figma import FakeFigma
from tests.utils.lambda_events import invoke, response_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "figma"
DESIGN_SYSTEM = (FIXTURES / "design_system.json").read_bytes()
SECRET = "figd_" + uuid.uuid4().hex + "_TOKEN"

GOOD_TSX = """\
export default function Avatar({ src }: { src?: string }) {
  return (
    <img
      src={src}
      style={{ background: "var(--color-surface)", borderRadius: "var(--radius-999)" }}
    />
  );
}
"""


def call(
    function: str,
    method: str,
    path: str,
    key: str | None,
    *,
    body: Any = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    response = invoke(function, method, path, key, body=body, raw=raw)
    return response["statusCode"], response.get("headers") or {}, response_json(response)


def analyze(key: str | None, *, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    status, _, answer = call("figma_analyze", "POST", "/api/figma/analyze", key, body=body, raw=raw)
    return status, answer


def assert_error(status: int, body: Any, expected: int, code: str) -> dict[str, Any]:
    assert status == expected, body
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


def stored_counts() -> tuple[int, int, int]:
    from common.stores.mongo import get_mongo

    db = get_mongo()
    return (
        db["figma_documents"].count_documents({}),
        db["figma.files"].count_documents({}),
        db["figma.chunks"].count_documents({}),
    )


@pytest.fixture
def figma(set_env: Callable[..., None]) -> Iterator[FakeFigma]:
    fake = FakeFigma(token=SECRET).start()
    fake.add_file("DeSiGn123", DESIGN_SYSTEM)
    set_env(FIGMA_API_URL=fake.url, FIGMA_TIMEOUT="10")
    yield fake
    fake.stop()


# -- the happy path ---------------------------------------------------------------


def test_a_figma_file_becomes_tokens_css_tailwind_an_inventory_and_a_report(
    api_key: str,
) -> None:
    from common.figma.store import document_bytes
    from common.history import flush_history
    from common.stores.mongo import get_mongo

    # When the file itself is posted
    status, answer = analyze(api_key, raw=DESIGN_SYSTEM)

    # Then the tokens, CSS, Tailwind theme and inventory come back
    assert status == 200, answer
    assert answer["kind"] == "figma"
    brand = answer["tokens"]["color"]["brand"]["primary-500"]
    assert brand["$type"] == "color" and brand["$value"] == "#1e66f5"
    assert "--color-brand-primary-500: #1e66f5;" in answer["css"]
    assert answer["tailwind"]["theme"]["extend"]["colors"]["brand"]["primary-500"] == "#1e66f5"
    assert answer["tailwind_config"].startswith("/** @type")
    assert answer["inventory"]["counts"]["sets"] == 1
    assert answer["inventory"]["components"][0]["name"] == "Button"
    assert answer["stats"]["nodes"] == 30 and answer["generated"] is None
    # And the document was stored whole in GridFS, byte for byte, with its entry
    document = answer["document"]
    assert document["source"] == "upload" and document["bytes"] == len(DESIGN_SYSTEM)
    assert document["name"] == "Design System" and document["version"] == "4242424242"
    assert document["last_modified"] == "2026-11-20T10:15:30Z" and document["root"] == ""
    assert b"".join(document_bytes(document["gridfs_id"])) == DESIGN_SYSTEM
    entry = get_mongo()["figma_documents"].find_one({"_id": document["id"]})
    assert entry is not None and entry["gridfs_id"] == document["gridfs_id"]
    assert entry["token_counts"]["color"] == 9 and entry["nodes"] == 30
    assert "analysis" not in entry  # only a job needs it kept
    # And the report reads back the same, for this key only
    status, _, stored = call("reports_get", "GET", answer["report_url"], api_key)
    assert status == 200 and stored == answer
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    other = create_key(store=get_postgres(), name="someone else").key
    status, _, hidden = call("reports_get", "GET", answer["report_url"], other)
    assert_error(status, hidden, 404, "not_found")
    # And the action is in the history
    flush_history(timeout_s=5)
    entry = get_mongo()["history"].find_one(
        {"task": "action:figma", "report_id": answer["report_id"]}
    )
    assert entry is not None and entry["result"]["tokens"] == answer["stats"]["token_count"]


def test_the_file_wrapped_as_file_gives_the_same_tokens(api_key: str) -> None:
    raw = b'{"file": ' + DESIGN_SYSTEM + b', "options": {"async": false}}'

    status, wrapped = analyze(api_key, raw=raw)
    _, plain = analyze(api_key, raw=DESIGN_SYSTEM)

    assert status == 200, wrapped
    assert wrapped["tokens"] == plain["tokens"] and wrapped["document"]["root"] == "file"


def test_components_come_checked_from_the_model(api_key: str, ollama: Any) -> None:
    # Given a model that first uses an unknown token, then only real ones
    ollama.script("```tsx\n" + GOOD_TSX.replace("--radius-999", "--radius-round") + "```")
    ollama.script("```tsx\n" + GOOD_TSX + "```")
    body = {
        "file": json.loads(DESIGN_SYSTEM),
        "options": {"components": {"framework": "react", "names": ["Avatar"], "max": 1}},
    }

    status, answer = analyze(api_key, body=body)

    assert status == 200, answer
    generated = answer["generated"]
    assert generated["framework"] == "react" and generated["rejected"] == []
    [component] = generated["components"]
    assert component["name"] == "Avatar" and component["attempts"] == 2
    assert component["code"] == GOOD_TSX
    assert component["tokens_used"] == ["--color-surface", "--radius-999"]


# -- async: a job that carries the document's id, never the document --------------


class _Ctx:
    def __init__(self, key_id: uuid.UUID) -> None:
        self.key_id = key_id
        self.job_id = uuid.uuid4()
        self.steps: list[str] = []

    def progress(self, step: str, percent: float, message: str = "") -> None:
        self.steps.append(step)

    def raise_if_cancelled(self) -> None:
        pass


def _key_id(key: str) -> uuid.UUID:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return authenticate(key, store=get_postgres()).key_id


def test_async_is_a_job_whose_input_is_the_stored_documents_id(api_key: str) -> None:
    from common.figma.service import run_job
    from common.stores.postgres import get_postgres

    raw = b'{"options": {"async": true}, "file": ' + DESIGN_SYSTEM + b"}"

    status, accepted = analyze(api_key, raw=raw)

    assert status == 202, accepted
    key_id = _key_id(api_key)
    with get_postgres().connection() as conn:
        job = conn.execute(
            "SELECT kind, input FROM jobs WHERE id = %s", (accepted["job_id"],)
        ).fetchone()
    assert job is not None and job["kind"] == "figma"
    job_input = job["input"]
    assert set(job_input) == {"document_id", "options"} and job_input["options"]["async"] is True
    # When a worker runs it
    ctx = _Ctx(key_id)
    result = run_job(job_input, ctx)  # type: ignore[arg-type]
    # Then it is the same report a request gives
    assert result["document"]["id"] == job_input["document_id"]
    assert result["tokens"]["color"]["brand"]["primary-500"]["$value"] == "#1e66f5"
    assert ctx.steps == ["load", "store", "done"]
    status, _, stored = call("reports_get", "GET", result["report_url"], api_key)
    assert status == 200 and stored == result


# -- fetching from Figma ------------------------------------------------------------


def test_file_key_and_token_fetch_the_file_and_the_token_goes_nowhere(
    api_key: str, figma: FakeFigma, capfd: pytest.CaptureFixture[str]
) -> None:
    from common.history import flush_history
    from common.stores.mongo import get_mongo
    from common.stores.postgres import get_postgres

    capfd.readouterr()
    # When a file is named by key, answered now and as a job
    status, answer = analyze(api_key, body={"file_key": "DeSiGn123", "token": SECRET})
    status_async, accepted = analyze(
        api_key, body={"file_key": "DeSiGn123", "token": SECRET, "options": {"async": True}}
    )

    # Then Figma was asked once per request, with the token in its header
    assert status == 200, answer
    assert status_async == 202, accepted
    assert [r["path"] for r in figma.requests] == ["/v1/files/DeSiGn123"] * 2
    assert figma.requests[0]["headers"]["X-Figma-Token"] == SECRET
    document = answer["document"]
    assert document["source"] == "figma" and document["file_key"] == "DeSiGn123"
    assert document["bytes"] == len(DESIGN_SYSTEM)
    assert answer["tokens"]["color"]["brand"]["primary-500"]["$value"] == "#1e66f5"
    # And the token is in no log line, answer, stored document, history entry or job
    flush_history(timeout_s=5)
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    assert SECRET not in json.dumps(answer) + json.dumps(accepted)
    db = get_mongo()
    for name in ("figma_documents", "reports", "history", "figma.files"):
        dumped = json.dumps(list(db[name].find({})), default=str)
        assert SECRET not in dumped, name
    chunks = b"".join(bytes(c["data"]) for c in db["figma.chunks"].find({}))
    assert SECRET.encode() not in chunks
    with get_postgres().connection() as conn:
        rows = conn.execute("SELECT input::text AS input FROM jobs").fetchall()
    assert rows and all(SECRET not in row["input"] for row in rows)


@pytest.mark.parametrize(
    ("body", "scripted", "expected", "code"),
    [
        ({"file_key": "DeSiGn123", "token": "figd_wrong"}, None, 403, "figma_forbidden"),
        ({"file_key": "Missing1", "token": SECRET}, None, 404, "figma_file_not_found"),
        (
            {"file_key": "DeSiGn123", "token": SECRET},
            (429, {"Retry-After": "17"}, {"status": 429, "err": "Rate limit exceeded"}),
            429,
            "figma_rate_limited",
        ),
        (
            {"file_key": "DeSiGn123", "token": SECRET},
            (500, {}, {"status": 500, "err": "Internal error"}),
            502,
            "figma_unavailable",
        ),
        ({"file_key": "../etc", "token": SECRET}, None, 422, "invalid_input"),
        ({"file_key": "DeSiGn123"}, None, 422, "invalid_input"),
    ],
)
def test_figma_errors_are_typed_and_clear(
    api_key: str,
    figma: FakeFigma,
    body: dict[str, Any],
    scripted: Any,
    expected: int,
    code: str,
) -> None:
    figma.next_status = scripted
    before = stored_counts()

    status, answer = analyze(api_key, body=body)

    error = assert_error(status, answer, expected, code)
    assert SECRET not in json.dumps(answer)
    if code == "figma_rate_limited":
        assert error["retry_after"] == 17 and "Rate limit exceeded" in error["message"]
    if code == "figma_forbidden":
        assert "Invalid token" in error["message"] and "DeSiGn123" in error["message"]
    assert stored_counts() == before


def test_a_figma_that_trickles_past_figma_timeout_is_504(
    api_key: str, figma: FakeFigma, set_env: Callable[..., None]
) -> None:
    # Given a server that answers every read in time, but the whole file too slowly
    set_env(FIGMA_API_URL=figma.url, FIGMA_TIMEOUT="0.5")
    figma.chunk_bytes, figma.delay_s = 4096, 0.1
    before = stored_counts()

    status, answer = analyze(api_key, body={"file_key": "DeSiGn123", "token": SECRET})

    error = assert_error(status, answer, 504, "figma_timeout")
    assert "FIGMA_TIMEOUT" in error["message"] and stored_counts() == before


def test_an_unreachable_figma_is_502(api_key: str, set_env: Callable[..., None]) -> None:
    from tests.utils.stores import closed_port_url

    set_env(FIGMA_API_URL=closed_port_url())

    status, answer = analyze(api_key, body={"file_key": "DeSiGn123", "token": SECRET})

    error = assert_error(status, answer, 502, "figma_unavailable")
    assert "FIGMA_API_URL" in error["message"]


# -- limits and bad bodies -----------------------------------------------------------


def test_the_route_has_its_own_body_limit_and_the_global_one_still_holds(
    api_key: str, set_env: Callable[..., None]
) -> None:
    # Given a global limit far below the file, and the route's own limit above it
    set_env(MAX_BODY_BYTES="2000")
    # Then the file is taken on this route
    status, answer = analyze(api_key, raw=DESIGN_SYSTEM)
    assert status == 200, answer
    # And every other route still refuses a body over MAX_BODY_BYTES
    status, _, refused = call(
        "explain", "POST", "/api/explain", api_key, body={"code": "x = 1\n" * 1000}
    )
    assert "MAX_BODY_BYTES" in assert_error(status, refused, 413, "payload_too_large")["message"]
    # When the route's limit is below the file
    set_env(FIGMA_MAX_BODY_BYTES="10000")
    before = stored_counts()
    status, answer = analyze(api_key, raw=DESIGN_SYSTEM)
    # Then it is refused, and nothing is left stored
    error = assert_error(status, answer, 413, "payload_too_large")
    assert "FIGMA_MAX_BODY_BYTES" in error["message"] and error["max_bytes"] == 10000
    assert stored_counts() == before


@pytest.mark.parametrize(
    ("raw", "expected", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'{"document": {"id": "0:0", "children": [', 400, "malformed_json"),
        (b'{"name": "a file without a document"}', 422, "invalid_input"),
        (DESIGN_SYSTEM[:-2] + b', "options": {"components": {"max": 99}}}', 422, "invalid_input"),
        (b'{"document": {"id": "0:0"}, "token": "' + SECRET.encode() + b'"}', 422, "invalid_input"),
    ],
)
def test_bad_bodies_are_refused_and_nothing_is_kept(
    api_key: str, raw: bytes, expected: int, code: str
) -> None:
    before = stored_counts()

    status, answer = analyze(api_key, raw=raw)

    error = assert_error(status, answer, expected, code)
    assert SECRET not in json.dumps(answer)
    if b'"max": 99' in raw:
        assert [f["path"] for f in error["fields"]] == ["body.options.components.max"]
    assert stored_counts() == before


def test_no_key_is_401_before_the_body_is_read(stores: None) -> None:
    status, answer = analyze(None, raw=DESIGN_SYSTEM)
    assert_error(status, answer, 401, "unauthorized")
