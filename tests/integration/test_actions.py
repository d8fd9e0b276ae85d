"""The code actions through the Lambda door (fix, test, optimize) and in-process
(migrate, generate: jobs on AWS and locally), on real stores, the Ollama double
scripted wrong first and right second, and the real sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.utils.lambda_events import invoke, response_json

CALC = "def add(a, b):\n    return a - b\n"
CALC_RIGHT = "def add(a, b):\n    return a + b\n"
CALC_STILL_WRONG = "def add(a, b):\n    return a * b\n"
CALC_TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def post(function: str, path: str, key: str, body: Any) -> tuple[int, Any]:
    response = invoke(function, "POST", path, key, body=body)
    return response["statusCode"], response_json(response)


def fenced(code: str, language: str = "python") -> str:
    return f"Here you go:\n```{language}\n{code}```\nDone."


def names(checks: list[dict[str, Any]]) -> set[str]:
    return {c["name"] for c in checks}


# -- /api/fix -------------------------------------------------------------------


def test_fix_loops_until_the_failing_test_passes_and_the_diff_applies(
    api_key: str, ollama: Any, tmp_path: Path
) -> None:
    ollama.script(fenced(CALC_STILL_WRONG))
    ollama.script(fenced(CALC_RIGHT))

    status, body = post(
        "fix",
        "/api/fix",
        api_key,
        {"files": {"calc.py": CALC, "test_calc.py": CALC_TEST}, "error": "add(2, 3) gives -1"},
    )

    assert status == 200, body
    assert body["verified"] is True and body["path"] == "calc.py"
    assert body["files"] == {"calc.py": CALC_RIGHT}
    verification = body["verification"]
    assert "test:test_calc.py::test_add" in names(verification["before"])
    assert "test:test_calc.py::test_add" in names(verification["after"])
    assert verification["still_failing"] == [] and verification["attempts"] == 2
    assert verification["tests_ran"] is True and verification["isolation"]
    assert [a["ok"] for a in body["attempts"]] == [False, True]
    assert "test_add" in body["attempts"][0]["problems"][0]
    # The second request carried the first failure back to the model.
    second = ollama.requests_to("/api/chat")[1]["json"]["messages"][-1]["content"]
    assert "test_add" in second
    # `git apply` takes the diff and gives the fixed file.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "calc.py").write_text(CALC)
    (tmp_path / "fix.diff").write_text(body["diff"])
    subprocess.run(["git", "apply", "fix.diff"], cwd=tmp_path, check=True)
    assert (tmp_path / "calc.py").read_text() == CALC_RIGHT


def test_fix_with_a_model_that_never_gets_it_right_says_so(api_key: str, ollama: Any) -> None:
    for _ in range(2):
        ollama.script(fenced(CALC_STILL_WRONG))

    status, body = post(
        "fix",
        "/api/fix",
        api_key,
        {
            "code": CALC,
            "path": "calc.py",
            "test": CALC_TEST,
            "options": {"max_attempts": 2},
        },
    )

    assert status == 200, body
    assert body["verified"] is False and body["files"] == {} and body["diff"] == ""
    assert len(body["attempts"]) == 2 and not any(a["ok"] for a in body["attempts"])
    assert "return a * b" in body["candidate_diff"]
    assert "test:test_calc.py::test_add" in names(body["verification"]["still_failing"])


def test_fix_refuses_paths_that_escape_with_422(api_key: str, ollama: Any) -> None:
    for bad in ("../calc.py", "/etc/passwd", "a\x00b.py"):
        status, body = post("fix", "/api/fix", api_key, {"files": {bad: CALC}})
        assert status == 422, body
        assert body["error"]["code"] == "invalid_input"
        assert body["error"]["fields"][0]["path"].startswith("body.files")
    assert ollama.requests_to("/api/chat") == []


def test_fix_reads_a_stored_project(api_key: str, ollama: Any) -> None:
    status, project = post("projects_create", "/api/projects", api_key, {"name": "calc"})
    assert status == 201, project
    files = {"calc.py": CALC, "test_calc.py": CALC_TEST}
    status, _ = post(
        "projects_index", f"/api/projects/{project['id']}/index", api_key, {"files": files}
    )
    assert status == 200
    ollama.script(fenced(CALC_RIGHT))

    status, body = post("fix", "/api/fix", api_key, {"project_id": project["id"]})

    assert status == 200, body
    assert body["verified"] is True and body["files"] == {"calc.py": CALC_RIGHT}


# -- /api/test ------------------------------------------------------------------

GENERATED = (
    "from calc import add\n\n\n"
    "def test_adds():\n    assert add(2, 3) == 5\n\n\n"
    "def test_wrong_expectation():\n    assert add(2, 2) == 5\n"
)
STILL_ONE_WRONG = GENERATED.replace(
    "def test_adds", "def test_zero():\n    assert add(0, 0) == 0\n\n\ndef test_adds"
)


def test_generated_tests_that_fail_are_repaired_or_dropped_with_the_reason(
    api_key: str, ollama: Any
) -> None:
    ollama.script("```python\nfrom calc import add\nthis is not python\n```")
    ollama.script(fenced(GENERATED))
    ollama.script(fenced(STILL_ONE_WRONG))

    status, body = post("test", "/api/test", api_key, {"code": CALC_RIGHT, "path": "calc.py"})

    assert status == 200, body
    assert body["verified"] is True and body["test_path"] == "test_calc.py"
    assert sorted(body["passed"]) == ["test_calc.py::test_adds", "test_calc.py::test_zero"]
    assert [d["name"] for d in body["dropped"]] == ["test_calc.py::test_wrong_expectation"]
    assert "assert" in body["dropped"][0]["reason"]
    assert "test_wrong_expectation" not in body["test_code"]
    assert body["coverage"]["calc.py"] == 100.0 and body["coverage_total"] == 100.0
    assert [a["ok"] for a in body["attempts"]] == [False, True, True]


@needs_node
def test_generated_node_tests_run_against_javascript(api_key: str, ollama: Any) -> None:
    code = "function add(a, b) { return a + b; }\nmodule.exports = { add };\n"
    tests = (
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const { add } = require('./calc.js');\n"
        "test('adds', () => { assert.strictEqual(add(2, 3), 5); });\n"
        "test('wrong', () => { assert.strictEqual(add(1, 1), 3); });\n"
    )
    ollama.script(fenced(tests, "javascript"))
    ollama.script(fenced(tests, "javascript"))

    status, body = post("test", "/api/test", api_key, {"code": code, "path": "calc.js"})

    assert status == 200, body
    assert body["verified"] is True and body["framework"] == "node:test"
    assert body["passed"] == ["calc.test.js > adds"]
    assert [d["name"] for d in body["dropped"]] == ["calc.test.js > wrong"]
    assert "'wrong'" not in body["test_code"]


def test_tests_for_a_language_without_a_runner_are_a_422(api_key: str, ollama: Any) -> None:
    status, body = post(
        "test", "/api/test", api_key, {"code": "fn main() {}\n", "language": "rust"}
    )
    assert status == 422 and body["error"]["code"] == "invalid_input"


# -- /api/optimize ----------------------------------------------------------------

SLOW = (
    "def total(n):\n    result = 0\n    for i in range(n):\n        result += i\n"
    "    return result\n"
)
FAST = "def total(n):\n    return n * (n - 1) // 2\n"
WRONG_FAST = "def total(n):\n    return n * n // 2\n"
TOTAL_TEST = (
    "from work import total\n\n\n"
    "def test_total():\n    assert total(5) == 10\n    assert total(0) == 0\n"
)


def test_optimize_keeps_the_tests_green_and_times_before_and_after(
    api_key: str, ollama: Any
) -> None:
    ollama.script(fenced(WRONG_FAST))
    ollama.script(fenced(FAST))

    status, body = post(
        "optimize",
        "/api/optimize",
        api_key,
        {
            "files": {"work.py": SLOW, "test_work.py": TOTAL_TEST},
            "goal": "performance",
            "benchmark": {"function": "total", "args": [20000], "repeat": 3},
        },
    )

    assert status == 200, body
    assert body["verified"] is True and body["tests_source"] == "given"
    assert body["files"] == {"work.py": FAST}
    assert "test:test_work.py::test_total" in names(body["verification"]["after"])
    timings = body["timings"]
    assert timings["same_result"] is True and timings["before"]["result"] == "199990000"
    assert timings["speedup"] > 5, timings


def test_optimize_refuses_given_tests_that_fail_before_any_change(
    api_key: str, ollama: Any
) -> None:
    broken = TOTAL_TEST.replace("== 10", "== 11")
    status, body = post(
        "optimize", "/api/optimize", api_key, {"files": {"work.py": SLOW, "test_work.py": broken}}
    )
    assert status == 422 and "fail before any change" in body["error"]["message"]
    assert body["error"]["failing"] == ["test:test_work.py::test_total"]


# -- /api/migrate (the job's action, run in-process) --------------------------------


def migrate(body: dict[str, Any]) -> dict[str, Any]:
    from common.actions.migrate import MigrateInput, migrate_request
    from common.models import get_model_client

    request = MigrateInput.model_validate(body)
    attempts = request.options.max_attempts or 3
    return migrate_request(
        request, owner_key_id=None, model=get_model_client(), max_attempts=attempts
    ).model_dump(mode="json")


@needs_node
def test_javascript_to_typescript_heals_against_the_carried_tests(ollama: Any) -> None:
    source = "function add(a, b) {\n  return a + b;\n}\nmodule.exports = { add };\n"
    tests = (
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const { add } = require('./calc');\n"
        "test('adds', () => { assert.strictEqual(add(2, 3), 5); });\n"
    )
    broken = (
        "function add(a: number, b: number): number {\n  return a - b;\n}\n"
        "module.exports = { add };\n"
    )
    healed = broken.replace("a - b", "a + b")
    ollama.script(fenced(broken, "typescript"))
    ollama.script(fenced(healed, "typescript"))

    out = migrate(
        {
            "files": {"calc.js": source, "calc.test.js": tests},
            "source": "JavaScript",
            "target": "TypeScript",
        }
    )

    assert out["verified"] is True and out["preset"] == "javascript-to-typescript"
    assert out["files"] == {"calc.ts": healed} and out["renamed"] == {"calc.js": "calc.ts"}
    assert out["behaviours"] == [
        {"name": "calc.test.js > adds", "source": "passed", "migrated": "passed", "message": ""}
    ]
    assert out["rounds"] == 2 and out["tests"]["origin"] == "given"
    assert "deleted file mode" in out["diff"] and "+++ b/calc.ts" in out["diff"]


FLASK_APP = """\
from flask import Flask, abort, jsonify

app = Flask(__name__)
ITEMS = {1: "apple"}


@app.route("/items/<int:item_id>")
def get_item(item_id):
    if item_id not in ITEMS:
        abort(404)
    return jsonify({"id": item_id, "name": ITEMS[item_id]})
"""
FLASK_TEST = """\
from app import app


def test_known_item():
    client = app.test_client()
    response = client.get("/items/1")
    assert response.status_code == 200
    assert response.get_json() == {"id": 1, "name": "apple"}


def test_unknown_item():
    assert app.test_client().get("/items/9").status_code == 404
"""
FASTAPI_APP = """\
from fastapi import FastAPI, HTTPException

app = FastAPI()
ITEMS = {1: "apple"}


@app.get("/items/{item_id}")
def get_item(item_id: int):
    if item_id not in ITEMS:
        raise HTTPException(status_code=404)
    return {"id": item_id, "name": ITEMS[item_id]}
"""
FASTAPI_TEST = """\
from fastapi.testclient import TestClient

from app import app


def test_known_item():
    response = TestClient(app).get("/items/1")
    assert response.status_code == 200
    assert response.json() == {"id": 1, "name": "apple"}


def test_unknown_item():
    assert TestClient(app).get("/items/9").status_code == 404
"""


def test_flask_to_fastapi_proves_the_behaviours_on_both_sides(ollama: Any) -> None:
    pytest.importorskip("flask")
    ollama.script(fenced(FASTAPI_APP))
    ollama.script(fenced(FASTAPI_TEST))

    out = migrate(
        {
            "files": {"app.py": FLASK_APP, "test_app.py": FLASK_TEST},
            "source": "flask",
            "target": "fastapi",
        }
    )

    assert out["verified"] is True, out["behaviours"]
    assert out["files"] == {"app.py": FASTAPI_APP, "test_app.py": FASTAPI_TEST}
    assert [(b["name"], b["source"], b["migrated"]) for b in out["behaviours"]] == [
        ("test_app.py::test_known_item", "passed", "passed"),
        ("test_app.py::test_unknown_item", "passed", "passed"),
    ]


def test_python2_to_3_runs_the_tests_on_the_migrated_code_only(ollama: Any) -> None:
    py2 = 'def greet(name):\n    print "hello", name\n    return "hello " + name\n'
    py3 = 'def greet(name):\n    print("hello", name)\n    return "hello " + name\n'
    test = (
        'from greet import greet\n\n\ndef test_greet():\n    assert greet("ann") == "hello ann"\n'
    )
    ollama.script(fenced(py3))

    out = migrate(
        {
            "files": {"greet.py": py2, "test_greet.py": test},
            "source": "python2",
            "target": "python3",
        }
    )

    assert out["verified"] is True and out["files"] == {"greet.py": py3}
    assert out["tests"]["ran_on_source"] is False and "does not run here" in out["tests"]["note"]
    assert out["behaviours"] == [
        {
            "name": "test_greet.py::test_greet",
            "source": "not run",
            "migrated": "passed",
            "message": "",
        }
    ]


# -- /api/generate (the job's action, run in-process) -------------------------------

PLAN = {
    "name": "greeter",
    "summary": "a greeting library",
    "tasks": [
        {"id": "lib", "path": "greeter.py", "description": "greet(name) returns 'hi NAME'"},
        {
            "id": "tests",
            "path": "test_greeter.py",
            "description": "pytest tests of greet",
            "depends_on": ["lib"],
        },
    ],
}
LIB_WRONG = "def greet(name):\n    return 'hello ' + name\n"
LIB_RIGHT = "def greet(name):\n    return 'hi ' + name\n"
LIB_TEST = "from greeter import greet\n\n\ndef test_greet():\n    assert greet('bo') == 'hi bo'\n"


def test_generate_runs_the_projects_tests_and_sends_failures_back(ollama: Any) -> None:
    from common.actions.generate import GenerateInput, generate_project, zip_files
    from common.models import get_model_client

    ollama.script(json.dumps(PLAN))
    ollama.script(fenced(LIB_WRONG))
    ollama.script(fenced(LIB_TEST))
    ollama.script(fenced(LIB_RIGHT))  # round 2: the blamed library...
    ollama.script(fenced(LIB_TEST))  # ...and the failing test's own file

    out = generate_project(
        GenerateInput(spec="a greeting library with tests", stack="python"),
        model=get_model_client(),
        max_attempts=3,
    )

    assert out.verified is True and out.rounds == 2
    assert out.files == {"greeter.py": LIB_RIGHT, "test_greeter.py": LIB_TEST}
    assert out.tests.ran and out.tests.passed == 1 and out.tests.failed == 0
    assert all(f.ok for f in out.verification)
    import io
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(zip_files(out.files, root="greeter")))
    assert sorted(archive.namelist()) == ["greeter/greeter.py", "greeter/test_greeter.py"]


def test_migrate_and_generate_answer_202_with_a_job(api_key: str, ollama: Any) -> None:
    status, body = post("generate", "/api/generate", api_key, {"spec": "a CLI that greets"})
    assert status == 202, body
    assert body["status_url"] == f"/api/jobs/{body['job_id']}" and body["status"] == "queued"
    status, body = post(
        "migrate",
        "/api/migrate",
        api_key,
        {"code": "print 'x'\n", "source": "py2", "target": "py3"},
    )
    assert status == 202, body
    assert ollama.requests_to("/api/chat") == []


def test_generate_adds_a_checked_dockerfile_and_manifests_when_asked(ollama: Any) -> None:
    from common.actions.generate import GenerateInput, generate_project
    from common.agents.workers.docker import dockerfile_for
    from common.agents.workers.kubernetes import AppSpec, base_manifests
    from common.models import get_model_client

    plan = {**PLAN, "tasks": PLAN["tasks"][:1]}
    dockerfile = dockerfile_for({"greeter.py": LIB_RIGHT})
    manifests = base_manifests(AppSpec(name="greeter", image="greeter:0.1.0", ports=[8080]))
    ollama.script(json.dumps(plan))
    ollama.script(fenced(LIB_RIGHT))
    # A Dockerfile on :latest breaks an error-level rule: it goes back once.
    ollama.script(fenced(dockerfile.replace("python:3.12-slim", "python:latest"), "dockerfile"))
    ollama.script(fenced(dockerfile, "dockerfile"))
    ollama.script(fenced(manifests, "yaml"))

    out = generate_project(
        GenerateInput(spec="a greeter", dockerfile=True, kubernetes=True),
        model=get_model_client(),
        max_attempts=3,
    )

    assert out.verified is True, out.verification
    assert out.files["Dockerfile"] == dockerfile and ".dockerignore" in out.files
    assert out.files["k8s/manifests.yaml"] == manifests
    assert [t.worker for t in out.plan.tasks] == ["code", "docker", "kubernetes"]  # type: ignore[union-attr]


NEVER_RIGHT = [
    (
        "test",
        "/api/test",
        {"code": CALC_RIGHT, "path": "calc.py"},
        "```python\nimport nothing_here\n```",
    ),
    (
        "optimize",
        "/api/optimize",
        {"files": {"work.py": SLOW, "test_work.py": TOTAL_TEST}},
        fenced(WRONG_FAST),
    ),
]


@pytest.mark.parametrize(("function", "path", "body", "answer"), NEVER_RIGHT)
def test_a_model_that_never_gets_it_right_gives_200_unverified_with_its_attempts(
    api_key: str, ollama: Any, function: str, path: str, body: dict[str, Any], answer: str
) -> None:
    for _ in range(2):
        ollama.script(answer)

    status, out = post(function, path, api_key, {**body, "options": {"max_attempts": 2}})

    assert status == 200, out
    assert out["verified"] is False
    assert len(out["attempts"]) == 2 and not any(a["ok"] for a in out["attempts"])
    assert all(a["problems"] for a in out["attempts"])
    assert out.get("files", {}) == {} and out.get("test_code", "") == ""


def test_migrate_and_generate_never_right_are_unverified_not_errors(ollama: Any) -> None:
    from common.actions.generate import GenerateInput, generate_project
    from common.models import get_model_client

    for _ in range(2):
        ollama.script("no code here, sorry")
    out = migrate(
        {
            "code": "print 'x'\n",
            "path": "x.py",
            "source": "py2",
            "target": "py3",
            "options": {"max_attempts": 2},
        }
    )
    assert out["verified"] is False and out["unmigrated"] == ["x.py"] and out["files"] == {}
    assert len(out["attempts"]) == 2

    for _ in range(2):
        ollama.script('{"name": "x"}')  # no tasks: never a valid plan
    built = generate_project(GenerateInput(spec="x"), model=get_model_client(), max_attempts=2)
    assert built.verified is False and built.plan is None and built.files == {}
    assert built.error is not None and built.error["code"] == "model_output_invalid"
    assert len(built.error["attempts"]) == 2
