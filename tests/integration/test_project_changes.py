"""POST /api/projects/{id}/changes on real stores: a verified fix becomes a pushed branch
whose commit holds exactly the fix, served by a real ``git http-backend``; an unverified
result is refused unless forced, and then says so; an uploaded project gets a new
revision and its old one stays downloadable; hostile input is a 4xx.

The fix is a real fix job (the Ollama double scripted), run by the jobs runner as a
worker would, and so is the change job.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.integration.test_actions import fenced
from tests.integration.test_git_sync import TOKEN, call, git, principal_of, served_repo
from tests.integration.test_git_sync import env as env  # noqa: PLC0414 (a fixture)
from tests.utils.git_http import GitHttpServer
from tests.utils.lambda_events import invoke

APP = "def total(prices):\n    return sum(prices) + 1\n"
FIXED = "def total(prices):\n    return sum(prices)\n"
TEST = "from app import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
FILES = {"app.py": APP, "tests/test_app.py": TEST, "README.md": "# shop\n"}
MESSAGE = "Stop adding one to every total\n\nThe sum of the prices is the total."


def run(job_id: str) -> dict[str, Any]:
    """Run a queued job to its end as a worker does; its row."""
    from common.jobs.events import get_event_sink
    from common.jobs.runner import RunSettings, process_job
    from common.jobs.store import get_job_store

    store = get_job_store()
    process_job(
        UUID(job_id),
        worker="w-test",
        store=store,
        events=get_event_sink(),
        limits=RunSettings(lease_s=60, max_attempts=1),
    )
    row = store.get_row(UUID(job_id))
    assert row is not None
    return row


def fix_job(key: str, pid: str, ollama: Any, answer: str, *, attempts: int = 1) -> str:
    """A finished fix job on ``app.py`` whose model answers ``answer`` each attempt."""
    for _ in range(attempts):
        ollama.script(fenced(answer))
    status, accepted = call(
        "fix",
        "POST",
        "/api/fix",
        key,
        {
            "project_id": pid,
            "path": "app.py",
            "error": "test_total fails",
            "options": {"async": True, "max_attempts": attempts},
        },
    )
    assert status == 202, accepted
    row = run(accepted["job_id"])
    assert row["status"] == "succeeded", row
    return str(accepted["job_id"])


def change(key: str, pid: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, answer = call("projects_changes", "POST", f"/api/projects/{pid}/changes", key, body)
    return status, answer


@pytest.fixture
def repo(env: None, tmp_path: Path) -> Any:
    with served_repo(tmp_path, FILES) as server:
        yield server


@pytest.fixture
def project(env: None, api_key: str, repo: GitHttpServer) -> str:
    """A project linked to ``repo`` and synced: its files are the repository's."""
    from tests.integration.test_git_sync import run_sync

    status, body = call(
        "git_credentials_create",
        "POST",
        "/api/git/credentials",
        api_key,
        {"host": repo.host, "token": TOKEN},
    )
    assert status == 201, body
    status, created = call("projects_create", "POST", "/api/projects", api_key, {"name": "c"})
    assert status == 201, created
    pid = str(created["id"])
    status, link = call(
        "projects_git_link",
        "POST",
        f"/api/projects/{pid}/git/link",
        api_key,
        {"remote_url": f"{repo.url}/repo.git", "branch": "main"},
    )
    assert status == 200, link
    assert run_sync(api_key, pid)["status"] == "succeeded"
    return pid


def bare(tmp_path: Path) -> Path:
    return tmp_path / "srv" / "repo.git"


def test_a_verified_fix_becomes_a_pushed_branch_holding_exactly_the_fix(
    api_key: str, project: str, ollama: Any, tmp_path: Path
) -> None:
    # Given a verified fix of the project's app.py
    job_id = fix_job(api_key, project, ollama, FIXED)
    fixed = run_result(job_id)
    assert fixed["verified"] is True, fixed["verification"]
    main = git("rev-parse", "main", cwd=bare(tmp_path)).strip()
    # When it is applied as a change, the model writing the message (its first answer
    # is too long a summary: it is asked again)
    ollama.script("Fix " + "the total " * 12)
    ollama.script(f"```\n{MESSAGE}\n```")
    status, accepted = change(api_key, project, {"job_id": job_id})
    assert status == 202, accepted
    row = run(accepted["job_id"])
    # Then a new branch is pushed, one commit on top of main holding the fix exactly
    assert row["status"] == "succeeded", row
    result = row["result"]
    assert result["target"] == "git" and result["verified"] and not result["forced"]
    branch, commit = result["branch"], result["commit"]
    assert branch.startswith("ao/fix-app-")
    assert git("rev-parse", branch, cwd=bare(tmp_path)).strip() == commit
    assert git("rev-parse", f"{commit}^", cwd=bare(tmp_path)).strip() == main
    assert git("show", f"{commit}:app.py", cwd=bare(tmp_path)) == FIXED
    assert git("diff", "--name-only", main, commit, cwd=bare(tmp_path)).split() == ["app.py"]
    pushed = git("diff", main, commit, cwd=bare(tmp_path))
    assert _hunks(pushed) == _hunks(fixed["diff"])
    # And the commit message is the model's, repaired of its fence, checked for length
    assert git("log", "-1", "--format=%B", commit, cwd=bare(tmp_path)).strip() == MESSAGE
    assert result["message"] == MESSAGE and result["files"] == ["app.py"]
    # And main did not move, and the project's own checkout is still on main
    assert git("rev-parse", "main", cwd=bare(tmp_path)).strip() == main


def test_a_base_that_moved_into_a_conflict_gets_a_merge_proposal(
    api_key: str, project: str, ollama: Any, tmp_path: Path
) -> None:
    # Given a verified fix made on the synced files, and then main moving: someone
    # else changed the same line
    job_id = fix_job(api_key, project, ollama, FIXED)
    seed = tmp_path / "seed"
    (seed / "app.py").write_text(APP.replace("+ 1", "+ 10"))
    git("commit", "--quiet", "-am", "ten", cwd=seed)
    git("push", "--quiet", "origin", "main", cwd=seed)
    # When the fix is applied
    status, accepted = change(api_key, project, {"job_id": job_id, "message": "Fix total"})
    assert status == 202, accepted
    row = run(accepted["job_id"])
    assert row["status"] == "succeeded", row
    result = row["result"]
    # Then the branch holds the fix on the files it was made on, says what conflicts,
    # and the merge machinery was asked for a checked proposal, not a push to main
    assert result["conflicts"] == ["app.py"] and result["merge_job_id"]
    assert git("show", f"{result['commit']}:app.py", cwd=bare(tmp_path)) == FIXED
    merged = run(result["merge_job_id"])
    assert merged["status"] == "succeeded", merged
    assert merged["result"]["status"] == "conflicts", merged["result"]
    assert merged["result"]["conflicts"] == ["app.py"]
    assert git("show", "main:app.py", cwd=bare(tmp_path)) == APP.replace("+ 1", "+ 10")


def run_result(job_id: str) -> dict[str, Any]:
    from common.jobs.store import get_job_store

    row = get_job_store().get_row(UUID(job_id))
    assert row is not None and row["result"] is not None
    result: dict[str, Any] = row["result"]
    return result


def _hunks(diff: str) -> list[str]:
    """The changed lines of a diff, without headers (index lines differ by tool)."""
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_an_unverified_result_is_refused_unless_forced_and_then_says_so(
    api_key: str, project: str, ollama: Any, tmp_path: Path
) -> None:
    # Given a fix whose candidates never pass the repository's test
    job_id = fix_job(api_key, project, ollama, APP.replace("+ 1", "+ 2"), attempts=2)
    assert run_result(job_id)["verified"] is False
    # When it is applied without force, then it is a 409 and nothing is queued
    status, answer = change(api_key, project, {"job_id": job_id, "message": "Try it"})
    assert status == 409 and answer["error"]["code"] == "conflict", answer
    assert "force" in answer["error"]["message"]
    # When forced, with a branch name and an author
    body = {
        "job_id": job_id,
        "force": True,
        "branch": "try/plus-two",
        "message": "Try plus two",
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
    }
    status, accepted = change(api_key, project, body)
    assert status == 202, accepted
    row = run(accepted["job_id"])
    assert row["status"] == "succeeded", row
    # Then the commit says it is unverified, and is by that author
    commit = row["result"]["commit"]
    message = git("log", "-1", "--format=%B", commit, cwd=bare(tmp_path))
    assert message.startswith("Try plus two") and "unverified" in message.lower()
    assert git("log", "-1", "--format=%an <%ae>", commit, cwd=bare(tmp_path)).strip() == (
        "Ada Lovelace <ada@example.com>"
    )
    assert row["result"]["forced"] is True
    # And the same branch again is a conflict, as a failed job
    status, again = change(api_key, project, body)
    assert status == 202
    assert run(again["job_id"])["error"]["code"] == "conflict"


def test_a_bare_diff_needs_force(api_key: str, project: str, tmp_path: Path) -> None:
    diff = "--- a/README.md\n+++ b/README.md\n@@ -1 +1,3 @@\n # shop\n+\n+Prices add up.\n"
    status, answer = change(api_key, project, {"diff": diff, "message": "Say it"})
    assert status == 409, answer
    status, accepted = change(api_key, project, {"diff": diff, "message": "Say it", "force": True})
    assert status == 202
    row = run(accepted["job_id"])
    assert row["status"] == "succeeded", row
    commit = row["result"]["commit"]
    assert git("show", f"{commit}:README.md", cwd=bare(tmp_path)) == "# shop\n\nPrices add up.\n"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "invalid_input"),
        ({"diff": "x", "job_id": str(uuid.uuid4())}, 422, "invalid_input"),
        ({"job_id": str(uuid.uuid4())}, 404, "not_found"),
        ({"diff": "x", "force": True, "branch": "../../etc"}, 422, "invalid_input"),
        ({"diff": "x", "force": True, "branch": "a b"}, 422, "invalid_input"),
        ({"diff": "x", "force": True, "author": {"name": "a\nb", "email": "e@x"}}, 422, None),
        ({"diff": "x", "force": True, "author": {"name": "a", "email": "no"}}, 422, None),
        ({"diff": "x", "force": True, "open": "merge"}, 422, None),
        ({"diff": "x" * 1_100_000, "force": True}, 413, "payload_too_large"),
        ({"diff": "x", "force": "yes please"}, 422, None),
        ({"diff": "--- a/x\n+++ b/x\n\u0000", "force": True}, 422, "invalid_input"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    api_key: str, project: str, body: dict[str, Any], status: int, code: str | None
) -> None:
    got, answer = change(api_key, project, body)
    assert got == status, answer
    if code:
        assert answer["error"]["code"] == code


def test_another_keys_project_or_job_is_not_found(api_key: str, project: str) -> None:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    other = create_key(store=get_postgres(), name="other").key
    assert change(other, project, {"diff": "x", "force": True})[0] == 404


def test_a_job_that_is_not_a_change_is_refused(api_key: str, project: str) -> None:
    status, accepted = call("projects_index", "POST", f"/api/projects/{project}/index", api_key, {})
    assert status == 202, accepted
    status, answer = change(api_key, project, {"job_id": accepted["job_id"], "force": True})
    assert status == 422 and "holds no change" in answer["error"]["message"], answer


def test_a_diff_that_does_not_apply_or_escapes_fails_the_job_cleanly(
    api_key: str, project: str, tmp_path: Path
) -> None:
    main = git("rev-parse", "main", cwd=bare(tmp_path)).strip()
    stale = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def total(items):\n-    x\n+    y\n"
    escape = "--- a/../outside.py\n+++ b/../outside.py\n@@ -0,0 +1 @@\n+import os\n"
    for diff in (stale, escape, "not a diff at all\n"):
        status, accepted = change(api_key, project, {"diff": diff, "force": True, "message": "m"})
        assert status == 202, accepted
        row = run(accepted["job_id"])
        assert row["status"] == "failed", row
        assert row["error"]["code"] in ("conflict", "invalid_input"), row["error"]
    # Nothing was pushed, nothing was left behind in the project's checkout
    assert git("for-each-ref", "--format=%(refname)", cwd=bare(tmp_path)).split() == [
        "refs/heads/main"
    ]
    assert git("rev-parse", "main", cwd=bare(tmp_path)).strip() == main
    assert not (tmp_path.parent / "outside.py").exists()


# -- a project without git ---------------------------------------------------------------


def test_an_uploaded_project_gets_a_new_revision_and_keeps_the_old_one(
    env: None, api_key: str, ollama: Any
) -> None:
    from common.storage.tree import store_texts

    status, created = call("projects_create", "POST", "/api/projects", api_key, {"name": "u"})
    pid = str(created["id"])
    key_id = principal_of(api_key).key_id
    first = store_texts(
        project_id=UUID(pid), owner_key_id=key_id, files=FILES, queue_index=False
    ).revision
    # When a fix job's result is applied, the model writing the message
    job_id = fix_job(api_key, pid, ollama, FIXED)
    assert run_result(job_id)["verified"] is True
    ollama.script(MESSAGE)
    status, accepted = change(api_key, pid, {"job_id": job_id})
    assert status == 202, accepted
    row = run(accepted["job_id"])
    assert row["status"] == "succeeded", row
    result = row["result"]
    # Then the stored files are a new revision holding the fix
    assert result["target"] == "stored" and result["files"] == ["app.py"]
    assert result["revision"] != first and result["branch"] is None
    shown = call("projects_get", "GET", f"/api/projects/{pid}", api_key)[1]
    assert shown["source"]["revision"] == result["revision"]
    assert download(api_key, pid, "app.py") == (200, FIXED.encode())
    # And the old revision's file is still downloadable, and unchanged files at it too
    assert download(api_key, pid, "app.py", first) == (200, APP.encode())
    assert download(api_key, pid, "README.md", first) == (200, b"# shop\n")
    assert download(api_key, pid, "app.py", "f" * 64)[0] == 404
    # A pull request needs a remote
    status, answer = change(api_key, pid, {"job_id": job_id, "open": "pull_request"})
    assert status == 422 and answer["error"]["code"] == "invalid_input", answer


def download(key: str, pid: str, path: str, revision: str | None = None) -> tuple[int, bytes]:
    import base64

    query = f"path={path}" + (f"&revision={revision}" if revision else "")
    response = invoke("projects_download", "GET", f"/api/projects/{pid}/download", key, query=query)
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    return response["statusCode"], data


# -- pull requests ------------------------------------------------------------------------


@pytest.fixture
def hosted(env: None, tmp_path: Path) -> Any:
    """``acme/shop.git`` served by ``git http-backend``, and a stand-in of the three
    hosts' REST APIs that knows that repository's branches as they are."""
    from tests.utils.git_hosts import GitHostStandIn

    with (
        served_repo(tmp_path, FILES, name="acme/shop.git") as server,
        GitHostStandIn(token=TOKEN) as api,
    ):
        yield server, api, tmp_path / "srv" / "acme/shop.git"


def link_hosted(api_key: str, hosted: Any, kind: str) -> tuple[str, str]:
    """A project linked to ``hosted``'s repository with its token stored, the stand-in
    speaking ``kind``'s API for it, and synced; its id and remote URL."""
    from tests.integration.test_git_sync import run_sync

    server, api, bare_repo = hosted
    api.add_repo(kind, "acme/shop", git_dir=bare_repo)
    call(
        "git_credentials_create",
        "POST",
        "/api/git/credentials",
        api_key,
        {"host": server.host, "token": TOKEN},
    )
    pid = str(call("projects_create", "POST", "/api/projects", api_key, {"name": kind})[1]["id"])
    remote = f"{server.url}/acme/shop.git"
    status, link = call(
        "projects_git_link",
        "POST",
        f"/api/projects/{pid}/git/link",
        api_key,
        {"remote_url": remote, "branch": "main", "host_kind": kind, "api_url": api.api_url(kind)},
    )
    assert status == 200 and link["host_kind"] == kind, link
    assert run_sync(api_key, pid)["status"] == "succeeded"
    return pid, remote


@pytest.mark.parametrize("kind", ["github", "gitlab", "bitbucket"])
def test_a_verified_fix_opens_a_pull_request_whose_body_holds_the_verification(
    api_key: str, ollama: Any, hosted: Any, kind: str
) -> None:

    _, api, _ = hosted
    # Given a project linked to the repository, saying which API its host speaks
    pid, _ = link_hosted(api_key, hosted, kind)
    job_id = fix_job(api_key, pid, ollama, FIXED)
    # When the fix is applied with open: pull_request
    status, accepted = change(
        api_key, pid, {"job_id": job_id, "open": "pull_request", "message": MESSAGE}
    )
    assert status == 202, accepted
    row = run(accepted["job_id"])
    assert row["status"] == "succeeded", row
    result = row["result"]
    # Then the host got one pull/merge request from the pushed branch into main
    (opened,) = api.pull_requests
    assert opened["head"] == result["branch"] and opened["base"] == "main"
    assert opened["head_sha"] == result["commit"]
    pr = result["pull_request"]
    assert pr["number"] == opened["number"] and pr["url"] == opened["url"]
    assert pr["kind"] == ("merge_request" if kind == "gitlab" else "pull_request")
    # And its body is the verification: the failing test now passes, and how it ran
    body = opened.get("body") or opened.get("description") or ""
    assert body.startswith("**Verified**")
    assert "| `test:tests/test_app.py::test_total` | fails | passes |" in body
    assert "tests ran: yes" in body
    # And the token went only in the auth header, never in a recorded body or path
    for recorded in api.calls(kind):
        assert TOKEN not in recorded.path and TOKEN not in str(recorded.json)


def test_a_link_with_an_api_url_on_a_private_address_is_refused_without_the_setting(
    api_key: str, set_env: Any, hosted: Any
) -> None:
    server, api, _ = hosted
    pid = str(call("projects_create", "POST", "/api/projects", api_key, {"name": "p"})[1]["id"])
    set_env(ALLOW_PRIVATE_GIT_HOSTS="false")
    status, answer = call(
        "projects_git_link",
        "POST",
        f"/api/projects/{pid}/git/link",
        api_key,
        {
            "remote_url": "https://github.com/acme/shop.git",
            "host_kind": "github",
            "api_url": api.api_url("github"),
        },
    )
    assert status == 422, answer


def test_a_nul_character_in_any_job_request_is_a_422(api_key: str) -> None:
    # JSONB cannot hold \u0000: an async action asked with one is refused, not a 500
    status, answer = call(
        "fix",
        "POST",
        "/api/fix",
        api_key,
        {"code": "x = 1\u0000\n", "error": "e", "options": {"async": True}},
    )
    assert status == 422 and "NUL" in answer["error"]["message"], answer
