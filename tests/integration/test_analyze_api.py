"""POST /api/analyze and GET /api/reports/{id} through the Lambda door, on real stores."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.utils.lambda_events import invoke, response_json

# `dispatch` has complexity 14 (rank C); line 20 runs a shell (bandit B602, high).
COMPLEX = """\
import subprocess


def dispatch(kind, value, strict, retries):
    if kind == "a" and value:
        return 1
    elif kind == "b" or strict:
        for item in value:
            if item:
                return 2
    elif kind == "c":
        while retries:
            retries -= 1
    if kind == "d":
        try:
            return int(value)
        except ValueError:
            return -1
    if strict and not value:
        subprocess.call(value, shell=True)
    return 0 if strict else 3


def helper(x):
    return x + 1
"""

REVIEW = {
    "summary": "dispatch routes requests by kind; it mixes routing with running commands.",
    "findings": [
        {
            "line": 20,
            "severity": "critical",
            "title": "command built from input",
            "recommendation": "never pass request data to a shell; map kinds to commands.",
        },
        {
            "line": 999,
            "severity": "medium",
            "title": "an invented line",
            "recommendation": "split dispatch by kind.",
        },
    ],
}


def call(function: str, method: str, path: str, key: str | None, body: Any = None) -> Any:
    response = invoke(function, method, path, key, body=body)
    return response["statusCode"], response_json(response)


def analyze(key: str | None, body: Any) -> tuple[int, Any]:
    status, answer = call("analyze", "POST", "/api/analyze", key, body)
    return status, answer


def get_report(key: str | None, report_id: str) -> tuple[int, Any]:
    status, answer = call("reports_get", "GET", f"/api/reports/{report_id}", key)
    return status, answer


def assert_error(status: int, body: Any, expected: int, code: str) -> dict[str, Any]:
    assert status == expected, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def other_key() -> str:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    return create_key(store=get_postgres(), name="someone else").key


def test_a_python_file_gets_metrics_findings_and_a_review_stored_as_a_report(
    api_key: str, ollama: Any
) -> None:
    # Given a model that wraps its JSON in prose and names a line that does not exist
    ollama.script(f"Here is my review:\n```json\n{json.dumps(REVIEW)}\n```\nHope it helps!")
    # When a Python file with a complex function and a shell call is analyzed
    status, report = analyze(
        api_key, {"code": COMPLEX, "path": "svc/dispatch.py", "instructions": "Be strict."}
    )
    # Then the measurements are there
    assert status == 200, report
    assert report["language"] == "python" and report["primary"] == "svc/dispatch.py"
    [file] = report["files"]
    assert file["path"] == "svc/dispatch.py" and file["parsed"] and not file["test"]
    assert file["function_count"] == 2 and file["max_complexity"] == 14
    assert file["functions"][0] == {
        "name": "dispatch",
        "line": 4,
        "end_line": 21,
        "complexity": 14,
        "rank": "C",
    }
    assert 0 < file["maintainability"] <= 100 and file["lines"] == 25
    metrics = report["metrics"]
    assert metrics["functions"] == 2 and metrics["max_complexity"] == 14
    assert metrics["worst_functions"][0]["name"] == "dispatch"
    assert {c["name"]: c["ran"] for c in report["checks"]} == {
        "radon": True,
        "ruff": True,
        "security-scan": True,
        "tree-sitter": False,
    }
    # And the tools' findings and the model's, most important first
    findings = report["findings"]
    keyed = {(f["source"], f["rule"]): f for f in findings}
    assert keyed[("bandit", "B602")]["severity"] == "high"
    assert keyed[("bandit", "B602")]["line"] == 20
    assert keyed[("bandit", "B602")]["complexity"] == 14
    assert keyed[("complexity", "complexity-C")]["line"] == 4
    assert findings[0]["source"] == "model" and findings[0]["severity"] == "critical"
    assert findings[0]["line"] == 20 and findings[0]["path"] == "svc/dispatch.py"
    # And the invented line is kept as a finding without a line
    invented = next(f for f in findings if f["title"] == "an invented line")
    assert invented["line"] is None and invented["path"] == "svc/dispatch.py"
    order = ["critical", "high", "medium", "low", "info"]
    assert [order.index(f["severity"]) for f in findings] == sorted(
        order.index(f["severity"]) for f in findings
    )
    assert report["findings_total"] == len(findings)
    assert sum(report["metrics"]["findings"].values()) == len(findings)
    assert report["summary"] == REVIEW["summary"]
    assert report["attempts"] == 1 and report["model_error"] is None
    assert report["reviewed"] == ["svc/dispatch.py"]
    # And the model was shown numbered code, the measurements and the instructions
    [sent] = ollama.requests_to("/api/chat")
    prompt = sent["json"]["messages"][-1]["content"]
    assert "Be strict." in prompt
    assert "  20|         subprocess.call(value, shell=True)" in prompt
    assert "svc/dispatch.py:4 dispatch complexity 14 (rank C)" in prompt
    assert sent["json"]["format"]["title"] == "Review"
    # And the report is stored: GET gives back the same answer
    assert report["report_url"] == f"/api/reports/{report['report_id']}"
    uuid.UUID(report["report_id"], version=4)
    status, stored = get_report(api_key, report["report_id"])
    assert status == 200, stored
    assert stored == report
    # And the history has the model's attempt and the action's result
    from common.history import find_history, flush_history

    flush_history()
    entries = find_history(key_id=str(_key_id(api_key)))
    result = next(e for e in entries if e.get("kind") == "result")
    assert result["report_id"] == report["report_id"]
    assert result["request_digest"] == report["request_digest"]
    assert {c["name"] for c in result["checks"]} >= {"radon", "ruff"}
    assert any(e["task"] == "analyze" and e.get("attempts") for e in entries)


def test_a_report_is_only_the_owners(api_key: str, ollama: Any) -> None:
    ollama.script(json.dumps({"summary": "Fine.", "findings": []}))
    status, report = analyze(api_key, {"code": "x = 1\n"})
    assert status == 200, report
    stranger = other_key()

    answers = [
        get_report(stranger, report["report_id"]),
        get_report(api_key, str(uuid.uuid4())),
        get_report(api_key, "not-an-id"),
        get_report(api_key, "x" * 300),
    ]

    for status, body in answers:
        assert_error(status, body, 404, "not_found")
    # Another key's report and a missing one are told apart by nothing but their ids.
    theirs = answers[0][1]["error"]["message"].replace(report["report_id"], "ID")
    missing = answers[1][1]["error"]["message"]
    assert theirs == missing.replace(missing.split()[1], "ID")
    assert_error(*get_report(None, report["report_id"]), 401, "unauthorized")


def test_a_model_that_never_gives_json_still_leaves_the_measurements(
    api_key: str, ollama: Any
) -> None:
    ollama.script("I think the code is fine, but I cannot format JSON today.")

    status, report = analyze(api_key, {"code": COMPLEX, "options": {"max_attempts": 1}})

    assert status == 200, report
    assert report["summary"] is None
    assert "no usable answer" in report["model_error"]
    assert report["attempts"] == 1
    assert {f["source"] for f in report["findings"]} >= {"bandit", "complexity"}
    assert "model" not in {f["source"] for f in report["findings"]}
    assert get_report(api_key, report["report_id"])[0] == 200


def test_files_in_several_languages_with_tests_marked(api_key: str, ollama: Any) -> None:
    files = {
        "web/decide.js": (
            "export function decide(a, b) {\n"
            "  if (a && b) { return 1 } else if (a || b) { return 2 }\n"
            "  for (const x of a) {}\n  while (a) {}\n"
            "  switch (a) { case 1: break; case 2: break; case 3: break; default: break }\n"
            "  try {} catch (e) {}\n"
            "  return a ? 1 : (b ?? 3)\n}\n"
        ),
        "svc/dispatch.py": COMPLEX,
        "tests/test_dispatch.py": (
            "from svc.dispatch import dispatch\n\n\n"
            "def test_a():\n    assert dispatch('a', 1, False, 0) == 1\n"
        ),
        "config/.env": "API_TOKEN=Zk3x9Qp2Lm8Rt5Vw\n",
    }
    # The model names line 3 of what it was shown: the first file shown is the most complex.
    review = {
        "summary": "Two routers.",
        "findings": [{"line": 3, "severity": "low", "title": "t", "recommendation": "r"}],
    }
    ollama.script(json.dumps(review))

    status, report = analyze(api_key, {"files": files})

    assert status == 200, report
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["web/decide.js"]["language"] == "javascript"
    assert by_path["web/decide.js"]["max_complexity"] == 13
    assert by_path["tests/test_dispatch.py"]["test"] is True
    assert by_path["config/.env"]["function_count"] == 0
    assert report["metrics"]["test_files"] == 1 and report["metrics"]["source_files"] == 3
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["tree-sitter"]["ran"] and checks["tree-sitter"]["findings"] == 1
    assert checks["radon"]["ran"] and checks["radon"]["findings"] == 1
    assert report["reviewed"] == ["svc/dispatch.py", "web/decide.js"]
    secret = next(f for f in report["findings"] if f["source"] == "secrets")
    assert secret["path"] == "config/.env" and "Zk3x9Qp2Lm8Rt5Vw" not in json.dumps(report)
    assert not any(f["rule"] == "B101" for f in report["findings"])
    placed = next(f for f in report["findings"] if f["source"] == "model")
    assert (placed["path"], placed["line"]) == ("svc/dispatch.py", 3)
    prompt = ollama.requests_to("/api/chat")[-1]["json"]["messages"][-1]["content"]
    assert "==> svc/dispatch.py <==" in prompt and "==> web/decide.js <==" in prompt


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"files": {"../outside.py": "x = 1\n"}}, "body.files.../outside.py.[key]"),
        ({"files": {"/etc/passwd": "x = 1\n"}}, "body.files./etc/passwd.[key]"),
        # Escaped in the answer: an error never echoes a control character.
        ({"files": {"nul\x00.py": "x = 1\n"}}, "body.files.nul\\x00.py.[key]"),
        ({"code": "x = 1\n", "path": "../x.py"}, "body.path"),
        ({"code": "x = 1\n", "path": "/abs.py"}, "body.path"),
    ],
)
def test_a_bad_path_is_422_naming_the_field(
    api_key: str, ollama: Any, body: dict[str, Any], field: str
) -> None:
    status, answer = analyze(api_key, body)

    error = assert_error(status, answer, 422, "invalid_input")
    assert [f["path"] for f in error["fields"]] == [field]
    assert ollama.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"instructions": "review"},
        {"code": "x = 1\n", "files": {"a.py": "x = 1\n"}},
        {"code": "x = 1\n", "project_id": str(uuid.uuid4())},
        {"code": "   \n"},
    ],
)
def test_exactly_one_of_code_files_or_project_is_required(
    api_key: str, ollama: Any, body: dict[str, Any]
) -> None:
    status, answer = analyze(api_key, body)

    error = assert_error(status, answer, 422, "invalid_input")
    assert error["fields"][0]["path"] == "body"
    assert ollama.requests == []


def test_a_path_not_among_the_files_is_422(api_key: str, ollama: Any) -> None:
    status, answer = analyze(api_key, {"files": {"a.py": "x = 1\n"}, "path": "b.py"})

    error = assert_error(status, answer, 422, "invalid_input")
    assert [f["path"] for f in error["fields"]] == ["body.path"]


def test_no_key_is_401(stores: None) -> None:
    status, answer = analyze(None, {"code": "x = 1\n"})
    assert "X-API-Key" in assert_error(status, answer, 401, "unauthorized")["message"]


@pytest.fixture
def embedded(set_env: Any) -> Iterator[None]:
    from common.memory import embedders

    set_env(EMBEDDING_PROVIDER="embedded")
    embedders.reset()
    yield
    embedders.reset()


def test_a_project_is_analyzed_from_its_indexed_files(
    api_key: str, ollama: Any, embedded: None
) -> None:
    from tests.integration.test_projects_api import FILES, create, index

    # Given an indexed project
    status, created = create(api_key, "shop")
    assert status == 201, created
    project_id = created["id"]
    files = {**FILES, "svc/dispatch.py": COMPLEX}
    assert index(api_key, project_id, files)[0] == 200
    ollama.script(json.dumps({"summary": "A shop.", "findings": []}))
    # When the whole of it is analyzed by id, with instructions about one part of it
    body = {"project_id": project_id, "instructions": "Review how e-mail is sent."}
    status, accepted = analyze(api_key, body)
    # Then that is a job (the whole repository), and its progress goes file by file
    assert status == 202, accepted
    from common.actions.analyze import run_job
    from common.jobs.store import get_job_store

    job = get_job_store().get_row(uuid.UUID(accepted["job_id"]))
    assert job is not None and job["kind"] == "analyze"
    ctx = _Ctx(_key_id(api_key))
    report = run_job(job["input"], ctx)  # type: ignore[arg-type]
    measured = [m for step, _, m in ctx.messages if step == "measure"]
    assert measured[-1].startswith(f"{len(files)} of {len(files)} files: ")
    assert len(measured) == 1 + len(files)
    # And every stored file is measured, and semantic memory put the e-mail code first
    assert {f["path"] for f in report["files"]} == set(files)
    assert report["reviewed"][0] == "src/mail.py"
    assert set(report["reviewed"]) == {
        "src/mail.py",
        "src/ranges.py",
        "svc/dispatch.py",
        "web/app.js",
    }
    assert any(f["rule"] == "B602" for f in report["findings"])
    # And another key can neither analyze the project nor read the report
    stranger = other_key()
    assert_error(*analyze(stranger, {"project_id": project_id}), 404, "not_found")
    assert_error(
        *analyze(stranger, {"project_id": project_id, "options": {"async": False}}),
        404,
        "not_found",
    )
    assert_error(*get_report(stranger, report["report_id"]), 404, "not_found")


def test_a_project_without_stored_files_is_422(api_key: str, ollama: Any) -> None:
    from tests.integration.test_projects_api import create

    _, created = create(api_key, "empty")

    status, answer = analyze(api_key, {"project_id": created["id"], "options": {"async": False}})

    error = assert_error(status, answer, 422, "invalid_input")
    assert [f["path"] for f in error["fields"]] == ["body.project_id"]


_JOBS = importlib.util.find_spec("common.jobs") is not None


@pytest.mark.skipif(not _JOBS, reason="common.jobs is not there yet")
def test_async_answers_202_with_a_job(api_key: str, ollama: Any) -> None:
    status, accepted = analyze(api_key, {"code": COMPLEX, "options": {"async": True}})

    assert status == 202, accepted
    job_id = accepted["job_id"]
    assert accepted["status_url"].endswith(job_id) and job_id in accepted["ws_url"]
    assert ollama.requests_to("/api/chat") == []


class _Ctx:
    """The part of a JobContext a runner uses."""

    def __init__(self, key_id: uuid.UUID | None) -> None:
        self.key_id = key_id
        self.job_id = uuid.uuid4()
        self.steps: list[tuple[str, float]] = []
        self.messages: list[tuple[str, float, str]] = []
        self.cancel = False

    def progress(self, step: str, percent: float, message: str = "") -> None:
        if not self.steps or self.steps[-1][0] != step:
            self.steps.append((step, percent))
        self.messages.append((step, percent, message))

    def on_token(self, token: str) -> None:
        pass

    def cancelled(self) -> bool:
        return self.cancel

    def raise_if_cancelled(self) -> None:
        if self.cancel:
            raise _Stopped()


class _Stopped(Exception):
    pass


def _key_id(key: str) -> uuid.UUID:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return authenticate(key, store=get_postgres()).key_id


def test_the_job_runner_stores_the_same_kind_of_report(api_key: str, ollama: Any) -> None:
    from common.actions.analyze import run_job

    ollama.script(json.dumps({"summary": "From a job.", "findings": []}))
    ctx = _Ctx(_key_id(api_key))

    result = run_job({"code": COMPLEX, "options": {"async": True}}, ctx)  # type: ignore[arg-type]

    assert result["summary"] == "From a job." and result["kind"] == "analysis"
    assert [s for s, _ in ctx.steps] == ["load", "measure", "review", "store", "done"]
    status, stored = get_report(api_key, result["report_id"])
    assert status == 200 and stored == result


def test_a_cancelled_job_stops_before_the_model_and_stores_nothing(
    api_key: str, ollama: Any
) -> None:
    from common.actions.analyze import run_job
    from common.stores.mongo import get_mongo

    ctx = _Ctx(_key_id(api_key))
    ctx.cancel = True
    before = get_mongo()["reports"].count_documents({"key_id": str(ctx.key_id)})

    with pytest.raises(_Stopped):
        run_job({"code": COMPLEX}, ctx)  # type: ignore[arg-type]

    assert [s for s, _ in ctx.steps] == ["load", "measure"]
    assert ollama.requests_to("/api/chat") == []
    assert get_mongo()["reports"].count_documents({"key_id": str(ctx.key_id)}) == before
