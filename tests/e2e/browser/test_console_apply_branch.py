"""A verified fix applied as a branch from the Projects page, in a real browser: the
project is linked to ``acme/shop.git`` served by ``git http-backend`` on loopback, its
host's REST API is a stand-in of GitHub's that knows that repository's branches, and
"Apply as branch" with "Open pull request" pushes the branch and opens the request.

What the page shows is compared with the change job's result over HTTP, the pushed
branch with the bare repository (git itself), and the pull request with what the
stand-in recorded. The server is test_console_git's: it may reach loopback remotes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_changes import SLOW_MS
from tests.e2e.browser.test_console_git import server as server  # noqa: PLC0414 (a fixture)
from tests.e2e.browser.test_console_project_flow import call, open_project, project_json
from tests.e2e.test_repository_flow import wait_job
from tests.integration.test_actions import fenced
from tests.integration.test_git_sync import TOKEN, git, served_repo
from tests.integration.test_project_changes import APP, FILES, FIXED
from tests.utils.git_hosts import GitHostStandIn
from tests.utils.git_http import GitHttpServer

BRANCH = "fix/total-off-by-one"
MESSAGE = "Stop adding one to every total"

Hosted = tuple[GitHttpServer, GitHostStandIn, Path]


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Hosted]:
    """``acme/shop.git`` (its app.py adds one to every total, its test says so) served
    over smart HTTP, and a GitHub stand-in that knows its branches as they are."""
    with (
        served_repo(tmp_path, FILES, name="acme/shop.git") as remote,
        GitHostStandIn(token=TOKEN) as standin,
    ):
        bare = tmp_path / "srv" / "acme/shop.git"
        standin.add_repo("github", "acme/shop", git_dir=bare)
        yield remote, standin, bare


def linked_project(console: ConsolePage, key: str, hosted: Hosted) -> str:
    """A project linked to the served repository (GitHub's API at the stand-in), synced,
    its files stored: its id."""
    remote, standin, _ = hosted
    stored = call(
        console, key, "POST", "/api/git/credentials", json={"host": remote.host, "token": TOKEN}
    )
    assert stored.status_code == 201, stored.text
    created = call(console, key, "POST", "/api/projects", json={"name": "shop"})
    assert created.status_code == 201, created.text
    pid = str(created.json()["id"])
    link = {
        "remote_url": f"{remote.url}/acme/shop.git",
        "branch": "main",
        "host_kind": "github",
        "api_url": standin.api_url("github"),
    }
    linked = call(console, key, "POST", f"/api/projects/{pid}/git/link", json=link)
    assert linked.status_code == 200, linked.text
    assert linked.json()["host_kind"] == "github"
    synced = call(console, key, "POST", f"/api/projects/{pid}/git/sync", json={})
    assert synced.status_code == 202, synced.text
    job = wait_job(console.server, key, synced.json()["job_id"], timeout_s=60)
    assert job["status"] == "succeeded", job
    deadline = time.monotonic() + 30
    while not set(FILES) <= {f["path"] for f in project_json(console, key, pid)["files"]}:
        assert time.monotonic() < deadline, project_json(console, key, pid)
        time.sleep(0.3)
    return pid


def test_a_verified_fix_is_pushed_as_a_branch_with_a_pull_request(
    console: ConsolePage, api_key: str, ollama: Any, hosted: Hosted
) -> None:
    _, standin, bare = hosted
    main_before = git("rev-parse", "main", cwd=bare).strip()
    # Given a project linked to the repository on its page, and a model that fixes app.py
    pid = linked_project(console, api_key, hosted)
    open_project(console, api_key, pid)
    ollama.script(fenced(FIXED))
    # When fix runs on app.py from the file action bar
    page = console.page
    page.locator('#tree li.file[data-path="app.py"] button.file-name').click()
    page.locator("#file-actions").wait_for()
    page.select_option("#file-action", "fix")
    page.click("#file-run")
    verdict = page.locator("#file-result .verdict")
    verdict.wait_for(timeout=SLOW_MS)
    # Then the verified result offers a branch of the linked repository and a pull request
    assert verdict.get_attribute("data-verified") == "true"
    page.locator('#file-result .apply-part[data-state="ready"]').wait_for()
    part = page.locator("#file-result .apply-part")
    assert part.get_attribute("data-target") == "git"
    run = part.locator("button.apply-run")
    assert run.inner_text() == "Apply as branch"
    branch, open_pr = part.locator(".apply-branch"), part.locator(".apply-open")
    assert branch.is_visible() and open_pr.is_visible() and not open_pr.is_checked()
    assert "Open pull request" in part.locator(".apply-open-label").inner_text()
    assert part.locator(".apply-force").count() == 0
    # When it is applied on a branch of ours, with our message, asking for a pull request
    branch.fill(BRANCH)
    part.locator(".apply-message").fill(MESSAGE)
    open_pr.check()
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/projects/{pid}/changes") and r.request.method == "POST"
    ) as answered:
        run.click()
    assert answered.value.status == 202, answered.value.text()
    fix_job = page.locator("#file-jobs .job").get_attribute("data-job-id")
    assert answered.value.request.post_data_json == {
        "job_id": fix_job,
        "branch": BRANCH,
        "message": MESSAGE,
        "open": "pull_request",
    }
    change_job = answered.value.json()["job_id"]
    # Then the change job is followed to its end, and its result is what the page shows
    page.locator('#file-result .apply-part[data-state="applied"]').wait_for(timeout=SLOW_MS)
    job = call(console, api_key, "GET", f"/api/jobs/{change_job}").json()
    assert job["status"] == "succeeded", job
    out = job["result"]
    assert out["target"] == "git" and out["verified"] is True and out["forced"] is False
    assert out["branch"] == BRANCH and out["base"] == "main" and out["files"] == ["app.py"]
    assert out["message"].startswith(MESSAGE)
    commit, pr = out["commit"], out["pull_request"]
    assert pr["kind"] == "pull_request"
    result = part.locator(".change-result")
    assert f"Pushed as branch {BRANCH}" in result.inner_text()
    assert result.locator("dd[data-fact='branch']").inner_text().strip() == BRANCH
    assert result.locator("dd[data-fact='base']").inner_text().strip() == "main"
    shown = result.locator("dd[data-fact='commit'] code")
    assert shown.get_attribute("data-revision") == commit
    assert shown.inner_text() == commit[:12]
    link = result.locator("dd[data-fact='pull-request'] a.pull-request")
    assert link.get_attribute("href") == pr["url"]
    assert link.inner_text() == f"Pull request #{pr['number']}"
    # And the bare repository has the branch at that commit, holding the fixed app.py
    # on top of main, which did not move
    assert git("rev-parse", f"refs/heads/{BRANCH}", cwd=bare).strip() == commit
    assert git("show", f"{commit}:app.py", cwd=bare) == FIXED
    assert git("rev-parse", f"{commit}^", cwd=bare).strip() == main_before
    assert git("rev-parse", "main", cwd=bare).strip() == main_before
    assert git("show", "main:app.py", cwd=bare) == APP
    # And the host got exactly one pull request, from that branch into main, at that
    # commit, whose body is the verification; the page links to it
    (opened,) = standin.pull_requests
    assert (opened["repo"], opened["head"], opened["base"]) == ("acme/shop", BRANCH, "main")
    assert opened["head_sha"] == commit
    assert opened["url"] == pr["url"] and opened["number"] == pr["number"]
    assert (opened.get("body") or "").startswith("**Verified**")
