"""/api/projects, /index and /search through the Lambda door, in-process, on real stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.utils.lambda_events import invoke, response_json

FILES = {
    "src/ranges.py": (
        "import bisect\n\n\n"
        "def contains(ranges: list[tuple[int, int]], value: int) -> bool:\n"
        '    """Is value inside one of the sorted, non-overlapping ranges?"""\n'
        "    pos = bisect.bisect_right(ranges, (value, float('inf')))\n"
        "    return pos > 0 and ranges[pos - 1][0] <= value < ranges[pos - 1][1]\n"
    ),
    "src/mail.py": (
        "import smtplib\n\n\n"
        "def send_welcome_email(address: str) -> None:\n"
        '    """Send the welcome message to a new user by SMTP."""\n'
        "    with smtplib.SMTP('localhost') as server:\n"
        "        server.sendmail('us@example.com', [address], 'Welcome!')\n"
    ),
    "web/app.js": (
        "export function renderLogin(form) {\n"
        "  form.innerHTML = '<input name=user><input name=password type=password>';\n"
        "}\n"
    ),
}


def call(function: str, path: str, key: str | None, body: Any = None) -> tuple[int, Any]:
    response = invoke(function, "POST", path, key, body=body)
    return response["statusCode"], response_json(response)


def create(key: str | None, name: Any = "demo") -> tuple[int, Any]:
    return call("projects_create", "/api/projects", key, {"name": name})


def index(key: str | None, project_id: str, files: Any) -> tuple[int, Any]:
    return call("projects_index", f"/api/projects/{project_id}/index", key, {"files": files})


def search(key: str | None, project_id: str, body: Any) -> tuple[int, Any]:
    return call("projects_search", f"/api/projects/{project_id}/search", key, body)


def assert_error(status: int, body: Any, expected: int, code: str) -> dict[str, Any]:
    assert status == expected, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture(autouse=True)
def _fresh_embedder() -> Iterator[None]:
    # The embedder is chosen once per process: each test chooses its own.
    from common.memory import embedders

    embedders.reset()
    yield
    embedders.reset()


@pytest.fixture
def embedded(set_env: Any) -> None:
    set_env(EMBEDDING_PROVIDER="embedded")


@pytest.fixture
def project(api_key: str) -> str:
    status, body = create(api_key)
    assert status == 201, body
    return str(body["id"])


def test_create_index_and_search_a_project(api_key: str, embedded: None) -> None:
    # Given a new project
    status, created = create(api_key, "  shop backend  ")
    assert status == 201, created
    assert created["name"] == "shop backend"
    assert set(created) == {"id", "name", "created_at"}
    project_id = created["id"]
    # When its files are indexed
    status, report = index(api_key, project_id, FILES)
    # Then every chunk is embedded once
    assert status == 200, report
    assert report["files"] == 3
    assert report["embedded"] == report["chunks_total"] >= 3
    assert report["skipped_unchanged"] == report["deleted"] == 0
    assert report["embedder"] == "embedded:all-MiniLM-L6-v2"
    assert isinstance(report["duration_ms"], int)
    # And a second indexing embeds nothing
    status, again = index(api_key, project_id, FILES)
    assert status == 200
    assert again["embedded"] == 0 and again["skipped_unchanged"] == report["chunks_total"]
    # And a question in words finds the code that answers it
    status, found = search(api_key, project_id, {"query": "email a newly registered user"})
    assert status == 200, found
    assert len(found["hits"]) == min(5, report["chunks_total"])
    top = found["hits"][0]
    assert (top["path"], top["symbol"]) == ("src/mail.py", "send_welcome_email")
    assert top["start_line"] == 4 and top["end_line"] == 7
    assert "def send_welcome_email" in top["text"]
    status, found = search(api_key, project_id, {"query": "password login form", "k": 1})
    assert status == 200
    assert [h["path"] for h in found["hits"]] == ["web/app.js"]


def test_search_before_indexing_finds_nothing(api_key: str, project: str, ollama: Any) -> None:
    status, body = search(api_key, project, {"query": "anything"})
    assert status == 200, body
    assert body["hits"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../outside.py",
        "src/../../outside.py",
        "src/./a.py",
        "src//a.py",
        "src/",
        "C:/win.py",
        "src\\win.py",
        "nul\x00.py",
        "",
    ],
)
def test_a_bad_path_is_422_naming_the_field(api_key: str, project: str, path: str) -> None:
    status, body = index(api_key, project, {"ok.py": "x = 1\n", path: "x = 2\n"})
    error = assert_error(status, body, 422, "invalid_input")
    [field] = error["fields"]
    assert field["path"].startswith("body.files.")
    assert field["path"].endswith("[key]")


def test_bad_bodies_are_422_with_their_paths(api_key: str, project: str) -> None:
    status, body = index(api_key, project, "not a dict")
    assert [f["path"] for f in assert_error(status, body, 422, "invalid_input")["fields"]] == [
        "body.files"
    ]
    status, body = search(api_key, project, {"query": "x", "k": 51})
    assert [f["path"] for f in assert_error(status, body, 422, "invalid_input")["fields"]] == [
        "body.k"
    ]
    status, body = search(api_key, project, {"query": "   ", "k": 0})
    paths = {f["path"] for f in assert_error(status, body, 422, "invalid_input")["fields"]}
    assert paths == {"body.query", "body.k"}
    status, body = create(api_key, "   ")
    assert [f["path"] for f in assert_error(status, body, 422, "invalid_input")["fields"]] == [
        "body.name"
    ]
    status, body = search(api_key, "not-a-uuid", {"query": "x"})
    assert [f["path"] for f in assert_error(status, body, 422, "invalid_input")["fields"]] == [
        "path.project_id"
    ]


def test_too_many_files_is_422(api_key: str, project: str) -> None:
    from common.memory.models import MAX_FILES

    status, body = index(api_key, project, {f"f{i}.py": "" for i in range(MAX_FILES + 1)})
    assert_error(status, body, 422, "invalid_input")


def test_another_keys_project_is_404_like_a_missing_one(project: str, ollama: Any) -> None:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    # Given a project of one key, and another key
    other = create_key(store=get_postgres(), name="someone else").key
    # When the other key indexes or searches it, or a project that does not exist
    answers = [
        index(other, project, {"a.py": "x = 1\n"}),
        search(other, project, {"query": "x"}),
        search(other, str(uuid.uuid4()), {"query": "x"}),
    ]
    # Then each is the same 404
    for status, body in answers:
        assert_error(status, body, 404, "not_found")
    messages = {body["error"]["message"].replace(project, "ID") for _, body in answers[:2]}
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("function", "path", "body"),
    [
        ("projects_create", "/api/projects", {"name": "x"}),
        ("projects_index", "/api/projects/{id}/index", {"files": {}}),
        ("projects_search", "/api/projects/{id}/search", {"query": "x"}),
    ],
)
def test_no_key_is_401(stores: None, function: str, path: str, body: Any) -> None:
    status, answer = call(function, path.replace("{id}", str(uuid.uuid4())), None, body)
    assert "X-API-Key" in assert_error(status, answer, 401, "unauthorized")["message"]


def test_explain_with_a_project_is_grounded_in_its_files_and_cites_them(
    api_key: str, project: str, embedded: None, ollama: Any
) -> None:
    from tests.integration.test_explain_lambda import explain

    # Given an indexed project
    assert index(api_key, project, FILES)[0] == 200
    ollama.script("It sends the welcome e-mail when a user signs up.")
    # When code that uses it is explained with the project's id
    status, _, body = explain(
        api_key,
        {
            "code": "send_welcome_email(user.email)",
            "question": "What happens on sign-up?",
            "project_id": project,
        },
    )
    # Then the model saw the most relevant file as context, and the answer cites it
    assert status == 200, body
    sent = ollama.requests_to("/api/chat")[-1]["json"]["messages"]
    assert "src/mail.py" in sent[1]["content"] and "def send_welcome_email" in sent[1]["content"]
    assert body["sources"][0]["path"] == "src/mail.py"
    assert "Sources:" in body["explanation"] and "`src/mail.py`" in body["explanation"]


def test_explain_with_another_keys_project_is_404(project: str, ollama: Any) -> None:
    from common.auth import create_key
    from common.stores.postgres import get_postgres
    from tests.integration.test_explain_lambda import explain

    other = create_key(store=get_postgres(), name="other").key

    status, _, body = explain(other, {"code": "x = 1", "project_id": project})

    assert_error(status, body, 404, "not_found")
    assert ollama.requests_to("/api/chat") == []
