"""POST /api/review on real stores: a planted SQL injection is found on the line the
change added and fails the verdict; the same file's old problems are not blamed on
the change; a model's suggestion is kept only when the file still parses and a
re-scan no longer reports the rule; settings per project; hostile input is a 4xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.test_git_sync import call

OLD = (
    "import subprocess\n\n\n"
    "def run(cmd):\n"
    "    return subprocess.call(cmd, shell=True)\n"  # an old problem, not the change's
)
NEW = OLD + (
    "\n\n"
    "def find_user(db, name):\n"
    "    query = \"SELECT * FROM users WHERE name = '%s'\" % name\n"
    "    return db.execute(query).fetchall()\n"
)
DIFF = (
    "--- a/app/users.py\n+++ b/app/users.py\n@@ -3,3 +3,8 @@ import subprocess\n"
    " \n def run(cmd):\n     return subprocess.call(cmd, shell=True)\n"
    "+\n+\n+def find_user(db, name):\n"
    "+    query = \"SELECT * FROM users WHERE name = '%s'\" % name\n"
    "+    return db.execute(query).fetchall()\n"
)
SAFE = '    return db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchall()'


def review(key: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, answer = call("review", "POST", "/api/review", key, body)
    return status, answer


def test_added_lines_follow_the_hunks() -> None:
    from common.review.service import added_lines

    assert added_lines(DIFF) == {"app/users.py": {6, 7, 8, 9, 10}}
    assert added_lines("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+a\n+b\n") == {
        "new.py": {1, 2}
    }
    removed = "--- a/x.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"
    assert added_lines(removed) == {}


def test_a_planted_injection_fails_and_old_problems_are_not_blamed(
    api_key: str, ollama: Any
) -> None:
    # Given a change adding a query built by string formatting to a file that already
    # runs a shell command, and a model whose suggestion is checked
    ollama.script(
        json.dumps(
            {
                "summary": "The new query is built from user input: use parameters.",
                "suggestions": [{"id": 0, "change": SAFE.strip()}],
            }
        )
    )
    status, answer = review(api_key, {"diff": DIFF, "files": {"app/users.py": NEW}})
    assert status == 200, answer
    # Then the verdict fails on the high finding at the execute line
    assert answer["verdict"] == "fail" and answer["fail_on"] == "high"
    lines = {(c["line"], c["rule"]) for c in answer["comments"]}
    assert (10, "python-sql-string-formatting") in lines
    assert any(c["rule"] == "B608" and c["line"] == 9 for c in answer["comments"])
    # And nothing is said about the shell call the change did not touch
    assert all(c["line"] in {6, 7, 8, 9, 10} for c in answer["comments"])
    assert not any(c["rule"] == "B602" for c in answer["comments"])
    # And the model's replacement was kept, at the line's indentation, because the
    # file parses with it and a re-scan no longer reports the rule there
    top = answer["comments"][0]
    assert top["rule"] == "python-sql-string-formatting"
    assert top["suggestion"] == SAFE
    assert answer["summary"].startswith("The new query is built from user input")
    # And the scan's SARIF holds the changed lines' findings only, and is valid SARIF
    from tests.unit.test_security_findings import assert_valid_sarif

    assert_valid_sarif(answer["sarif"])
    located = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for run in answer["sarif"]["runs"]
        for r in run["results"]
    }
    assert ("python-sql-string-formatting", 10) in located
    assert not any(rule == "B602" for rule, _ in located)


def test_a_suggestion_that_breaks_the_file_or_keeps_the_problem_is_asked_again(
    api_key: str, ollama: Any
) -> None:
    broken = {"summary": "Fix it.", "suggestions": [{"id": 0, "change": "return db.execute("}]}
    same = {
        "summary": "Fix it.",
        "suggestions": [{"id": 0, "change": 'return db.execute("SELECT %s" % name)'}],
    }
    ollama.script(json.dumps(broken))
    ollama.script(json.dumps(same))
    ollama.script(json.dumps(same))
    status, answer = review(
        api_key,
        {"diff": DIFF, "files": {"app/users.py": NEW}, "options": {"max_attempts": 3}},
    )
    assert status == 200, answer
    # No attempt passed the checks: no suggestion, the tools' findings stand, and the
    # model's failure is said
    assert all(c["suggestion"] is None for c in answer["comments"])
    assert answer["verdict"] == "fail"
    assert answer["model_error"] and "review" in answer["model_error"]
    asked = ollama.requests_to("/api/chat")
    assert len(asked) == 3
    said_back = asked[1]["json"]["messages"][-1]["content"]
    assert "no longer parses" in said_back


def test_a_clean_change_passes(api_key: str, ollama: Any) -> None:
    clean = (
        "--- /dev/null\n+++ b/app/math.py\n@@ -0,0 +1,2 @@\n+def add(a, b):\n+    return a + b\n"
    )
    status, answer = review(
        api_key, {"diff": clean, "files": {"app/math.py": "def add(a, b):\n    return a + b\n"}}
    )
    assert status == 200, answer
    assert answer["verdict"] == "pass" and answer["comments"] == []
    assert ollama.requests_to("/api/chat") == []  # nothing to suggest: no model call


def test_project_settings_choose_the_checks_and_the_failing_severity(
    api_key: str, ollama: Any
) -> None:
    status, created = call("projects_create", "POST", "/api/projects", api_key, {"name": "r"})
    pid = created["id"]
    from common.auth import authenticate
    from common.storage.tree import store_texts
    from common.stores.postgres import get_postgres

    key_id = authenticate(api_key, store=get_postgres()).key_id
    store_texts(project_id=pid, owner_key_id=key_id, files={"app/users.py": OLD}, queue_index=False)
    status, saved = call(
        "projects_review_settings",
        "PUT",
        f"/api/projects/{pid}/review/settings",
        api_key,
        {"checks": ["security"], "fail_on": "critical"},
    )
    assert status == 200 and saved == {"checks": ["security"], "fail_on": "critical"}
    # The diff is applied to the stored files; high findings no longer fail the verdict
    status, answer = review(api_key, {"diff": DIFF, "project_id": pid, "suggest": False})
    assert status == 200, answer
    assert answer["verdict"] == "pass" and answer["fail_on"] == "critical"
    assert answer["checks"] == ["security"] and answer["counts"]["high"] >= 1
    assert ollama.requests_to("/api/chat") == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"diff": DIFF},
        {"files": {"a.py": "x"}},
        {"diff": "not a diff", "files": {"a.py": "x"}},
        {"diff": DIFF, "files": {"other.py": "x"}},
        {"base": "main", "head": "feature"},
        {"diff": DIFF, "files": {"app/users.py": NEW}, "fail_on": "catastrophic"},
        {"diff": DIFF, "files": {"app/users.py": NEW}, "checks": ["lint"]},
        {"diff": DIFF, "files": {"../etc/passwd": NEW}},
        {"diff": DIFF, "files": {"app/users.py": NEW}, "base": "x; rm -rf /"},
    ],
)
def test_bad_input_is_a_422(api_key: str, body: dict[str, Any]) -> None:
    status, answer = review(api_key, body)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_input"


def test_another_keys_project_is_not_found(api_key: str) -> None:
    import uuid

    status, answer = review(api_key, {"diff": DIFF, "project_id": str(uuid.uuid4())})
    assert status == 404, answer
