"""Review on every pull request, through the webhook, on real stores: a delivery signed
with the project's secret queues a review job; the job fetches the pull request's
head over ``git http-backend``, reviews what it changed, and posts inline comments and
a commit status to the host's stand-in. A planted SQL injection gets a comment on its
line and a failing status; a clean pull request a passing one; a replay does nothing
twice; a bad signature is a 401 and nothing runs."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_git_sync import TOKEN, call, git
from tests.integration.test_project_changes import env as env  # noqa: PLC0414 (a fixture)
from tests.integration.test_project_changes import hosted as hosted  # noqa: PLC0414
from tests.integration.test_project_changes import link_hosted, run
from tests.utils.lambda_events import invoke, response_json

INJECTION = (
    "import sqlite3\n\n\n"
    "def find_user(db: sqlite3.Connection, name: str):\n"
    "    query = \"SELECT * FROM users WHERE name = '%s'\" % name\n"
    "    return db.execute(query).fetchall()\n"
)
CLEAN = "def add(a, b):\n    return a + b\n"


def jobs_count() -> int:
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM jobs WHERE kind = 'pr_review'").fetchone()
    return int(row["n"]) if row else 0


@pytest.fixture
def setup(api_key: str, hosted: Any, tmp_path: Path) -> dict[str, Any]:
    """A project linked to ``acme/shop`` (GitHub's API on the stand-in), synced, with
    its webhook secret."""
    _, api, _ = hosted
    pid, remote = link_hosted(api_key, hosted, "github")
    status, hook = call("projects_webhook", "POST", f"/api/projects/{pid}/webhook", api_key)
    assert status == 201, hook
    assert hook["urls"]["github"].endswith(f"/api/webhooks/github?project={pid}")
    return {
        "pid": pid,
        "remote": remote,
        "secret": hook["secret"],
        "api": api,
        "seed": tmp_path / "seed",
    }


def open_pull_request(s: dict[str, Any], branch: str, files: dict[str, str]) -> dict[str, Any]:
    """Push ``branch`` with ``files`` and open a pull request for it on the stand-in."""
    from common.git.hosts import HostClient, host_repo

    seed = s["seed"]
    git("checkout", "--quiet", "-B", branch, "main", cwd=seed)
    for path, text in files.items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(text)
    git("add", ".", cwd=seed)
    git("commit", "--quiet", "-m", f"add {branch}", cwd=seed)
    git("push", "--quiet", "origin", branch, cwd=seed)
    head = git("rev-parse", "HEAD", cwd=seed).strip()
    base = git("rev-parse", "main", cwd=seed).strip()
    repo = host_repo(
        s["remote"], kind="github", api_url=s["api"].api_url("github"), allow_private=True
    )
    with HostClient(repo, TOKEN) as client:
        pr = client.open_pull_request(head=branch, base="main", title=f"Add {branch}", body="")
    return {"number": pr.number, "url": pr.url, "head": head, "base": base, "branch": branch}


def payload(s: dict[str, Any], pr: dict[str, Any], action: str = "opened") -> bytes:
    """A GitHub ``pull_request`` event, with the fields GitHub documents."""
    return json.dumps(
        {
            "action": action,
            "number": pr["number"],
            "pull_request": {
                "number": pr["number"],
                "title": f"Add {pr['branch']}",
                "html_url": pr["url"],
                "user": {"login": "octocat"},
                "head": {"ref": pr["branch"], "sha": pr["head"]},
                "base": {"ref": "main", "sha": pr["base"]},
            },
            "repository": {
                "full_name": "acme/shop",
                "clone_url": s["remote"],
                "ssh_url": "git@github.com:acme/shop.git",
                "html_url": s["remote"].removesuffix(".git"),
            },
        }
    ).encode()


def deliver(
    pid: str | None, body: bytes, secret: str, *, delivery: str | None = None, sign: bool = True
) -> tuple[int, Any]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    if sign:
        headers["X-Hub-Signature-256"] = signature
    response = invoke(
        "webhooks",
        "POST",
        "/api/webhooks/github",
        None,
        raw=body,
        headers=headers,
        query=f"project={pid}" if pid else "",
    )
    return response["statusCode"], response_json(response)


def test_a_planted_injection_gets_a_comment_on_its_line_and_a_failing_status(
    api_key: str, setup: dict[str, Any], ollama: Any
) -> None:
    ollama.script(json.dumps({"summary": "The new query takes user input.", "suggestions": []}))
    pr = open_pull_request(setup, "feature/users", {"app/users.py": INJECTION})
    body = payload(setup, pr)
    delivery = str(uuid.uuid4())
    # When the host delivers the event, signed with the project's secret
    status, answer = deliver(setup["pid"], body, setup["secret"], delivery=delivery)
    assert status == 202 and answer["status"] == "queued", answer
    row = run(answer["job_id"])
    assert row["status"] == "succeeded", row
    # Then an inline comment sits on the injection's execute line, and the status fails
    api = setup["api"]
    inline = [c for c in api.comments if c.get("type") == "inline"]
    assert any(c["path"] == "app/users.py" and c["line"] == 6 for c in inline), inline
    assert any("python-sql-string-formatting" in c["body"] for c in inline)
    summary = [c for c in api.comments if c.get("type") == "summary"]
    assert summary and "fails" in summary[0]["body"]
    (state,) = [s for s in api.statuses if s["sha"] == pr["head"]]
    assert state["state"] == "failure" and state["context"] == "ai-orchestrator/review"
    # And the review is in the project's history
    status, history = call(
        "projects_reviews", "GET", f"/api/projects/{setup['pid']}/reviews", api_key
    )
    assert status == 200, history
    (kept,) = history["items"]
    assert kept["verdict"] == "fail" and kept["pull_request"]["number"] == pr["number"]
    # And the scan's SARIF is there to download, with the injection in it
    status, sarif = call("reports_get", "GET", kept["sarif_url"], api_key)
    assert status == 200 and sarif["version"] == "2.1.0", sarif
    rules = {r["ruleId"] for run in sarif["runs"] for r in run["results"]}
    assert "python-sql-string-formatting" in rules
    # And the same delivery again does nothing
    before = jobs_count()
    status, again = deliver(setup["pid"], body, setup["secret"], delivery=delivery)
    assert status == 202 and again["status"] == "duplicate", again
    assert jobs_count() == before


def host_payload(kind: str, s: dict[str, Any], pr: dict[str, Any]) -> bytes:
    """A pull (merge) request opened, in ``kind``'s documented payload shape."""
    if kind == "github":
        return payload(s, pr)
    if kind == "gitlab":
        return json.dumps(
            {
                "object_kind": "merge_request",
                "user": {"username": "ada"},
                "project": {
                    "git_http_url": s["remote"],
                    "git_ssh_url": "git@gitlab.com:acme/shop.git",
                    "web_url": s["remote"].removesuffix(".git"),
                },
                "object_attributes": {
                    "iid": pr["number"],
                    "title": f"Add {pr['branch']}",
                    "url": pr["url"],
                    "source_branch": pr["branch"],
                    "target_branch": "main",
                    "last_commit": {"id": pr["head"]},
                    "action": "open",
                    "state": "opened",
                },
            }
        ).encode()
    return json.dumps(
        {
            "pullrequest": {
                "id": pr["number"],
                "title": f"Add {pr['branch']}",
                "state": "OPEN",
                "links": {"html": {"href": pr["url"]}},
                "source": {"branch": {"name": pr["branch"]}, "commit": {"hash": pr["head"]}},
                "destination": {"branch": {"name": "main"}, "commit": {"hash": pr["base"]}},
                "author": {"display_name": "Ada"},
            },
            "repository": {
                "full_name": "acme/shop",
                "links": {"html": {"href": "https://bitbucket.org/acme/shop"}},
            },
        }
    ).encode()


def host_deliver(kind: str, pid: str, body: bytes, secret: str) -> tuple[int, Any]:
    delivery = str(uuid.uuid4())
    signed = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "github": {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signed,
        },
        "gitlab": {
            "X-Gitlab-Event": "Merge Request Hook",
            "X-Gitlab-Event-UUID": delivery,
            "X-Gitlab-Token": secret,
        },
        "bitbucket": {
            "X-Event-Key": "pullrequest:created",
            "X-Request-UUID": delivery,
            "X-Hub-Signature": signed,
        },
    }[kind]
    response = invoke(
        "webhooks",
        "POST",
        f"/api/webhooks/{kind}",
        None,
        raw=body,
        headers={**headers, "Content-Type": "application/json"},
        query=f"project={pid}",
    )
    return response["statusCode"], response_json(response)


@pytest.mark.parametrize("kind", ["gitlab", "bitbucket"])
def test_gitlab_and_bitbucket_get_their_comments_and_status_too(
    api_key: str, hosted: Any, tmp_path: Path, ollama: Any, kind: str
) -> None:
    _, api, _ = hosted
    pid, remote = link_hosted(api_key, hosted, kind)
    secret = call("projects_webhook", "POST", f"/api/projects/{pid}/webhook", api_key)[1]["secret"]
    s = {"pid": pid, "remote": remote, "secret": secret, "api": api, "seed": tmp_path / "seed"}
    # A merge (pull) request adding the injection, opened on the host
    from common.git.hosts import HostClient, host_repo

    seed = s["seed"]
    git("checkout", "--quiet", "-B", "feature/users", "main", cwd=seed)
    (seed / "app").mkdir(exist_ok=True)
    (seed / "app/users.py").write_text(INJECTION)
    git("add", ".", cwd=seed)
    git("commit", "--quiet", "-m", "users", cwd=seed)
    git("push", "--quiet", "origin", "feature/users", cwd=seed)
    head = git("rev-parse", "HEAD", cwd=seed).strip()
    base = git("rev-parse", "main", cwd=seed).strip()
    repo = host_repo(remote, kind=kind, api_url=api.api_url(kind), allow_private=True)  # type: ignore[arg-type]
    with HostClient(repo, TOKEN) as client:
        opened = client.open_pull_request(head="feature/users", base="main", title="u", body="")
    pr = {"number": opened.number, "url": opened.url, "head": head, "base": base}
    pr["branch"] = "feature/users"
    ollama.script(json.dumps({"summary": "An injection.", "suggestions": []}))
    # When the host delivers it, signed its own way
    status, answer = host_deliver(kind, pid, host_payload(kind, s, pr), secret)
    assert status == 202 and answer["status"] == "queued", answer
    row = run(answer["job_id"])
    assert row["status"] == "succeeded", row
    # Then the comment is on the injection's line, and the status fails, in the host's words
    inline = [c for c in api.comments if c.get("type") == "inline"]
    assert any(c["path"] == "app/users.py" and c["line"] == 6 for c in inline), api.comments
    (state,) = [x for x in api.statuses if x["sha"] == head]
    assert state["state"] == {"gitlab": "failed", "bitbucket": "FAILED"}[kind], state


def test_a_clean_pull_request_gets_a_passing_status(setup: dict[str, Any], ollama: Any) -> None:
    pr = open_pull_request(setup, "feature/add", {"app/math.py": CLEAN})
    status, answer = deliver(setup["pid"], payload(setup, pr), setup["secret"])
    assert status == 202, answer
    assert run(answer["job_id"])["status"] == "succeeded"
    (state,) = [s for s in setup["api"].statuses if s["sha"] == pr["head"]]
    assert state["state"] == "success"
    assert not [c for c in setup["api"].comments if c.get("type") == "inline"]
    assert ollama.requests_to("/api/chat") == []


def test_a_bad_signature_is_401_and_nothing_runs(setup: dict[str, Any]) -> None:
    pr = open_pull_request(setup, "feature/bad", {"app/users.py": INJECTION})
    body = payload(setup, pr)
    before = jobs_count()
    for status, answer in (
        deliver(setup["pid"], body, "not-the-secret"),
        deliver(setup["pid"], body, setup["secret"], sign=False),
        deliver(setup["pid"], body + b" ", setup["secret"].upper()),
        deliver(None, body, "not-the-secret"),
    ):
        assert status == 401, answer
    assert jobs_count() == before
    assert setup["api"].statuses == []


def test_without_the_project_the_repository_finds_it(setup: dict[str, Any], ollama: Any) -> None:
    pr = open_pull_request(setup, "feature/found", {"app/math.py": CLEAN})
    status, answer = deliver(None, payload(setup, pr), setup["secret"])
    assert status == 202 and answer["status"] == "queued", answer
    assert answer["project_id"] == setup["pid"]


def test_events_that_are_not_a_pull_request_change_are_ignored(setup: dict[str, Any]) -> None:
    pr = open_pull_request(setup, "feature/closed", {"app/math.py": CLEAN})
    before = jobs_count()
    status, answer = deliver(setup["pid"], payload(setup, pr, action="closed"), setup["secret"])
    assert status == 202 and answer["status"] == "ignored", answer
    assert jobs_count() == before


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1, 2]", b'{"action": "opened"}', "\u2603".encode() * 1000]
)
def test_garbage_from_a_signed_sender_is_a_clear_4xx(setup: dict[str, Any], body: bytes) -> None:
    status, answer = deliver(setup["pid"], body, setup["secret"])
    assert 400 <= status < 500, answer
    assert answer["error"]["code"] and answer["error"]["message"]


def test_an_unknown_provider_is_404() -> None:
    response = invoke("webhooks", "POST", "/api/webhooks/sourceforge", None, raw=b"{}")
    assert response["statusCode"] == 404
