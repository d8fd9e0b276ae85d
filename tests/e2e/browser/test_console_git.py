"""The Projects page's git link and sync status in a real browser, against a git remote
served on loopback (``git http-backend`` behind basic auth).

A remote on loopback is refused unless the server runs with ALLOW_PRIVATE_GIT_HOSTS,
which the shared ``server`` fixture does not set: this module starts its own server
with it (and its own Redis key prefix, so its job queue is its own and the shared
server's worker never takes these sync jobs).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser.conftest import ConsolePage
from tests.integration.test_git_sync import APP, TOKEN, git, served_repo
from tests.utils.git_http import GitHttpServer
from tests.utils.server import LocalServer


@pytest.fixture(scope="module")
def server(
    base_env: dict[str, str], _session_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    """A local server that may reach git remotes on loopback (this module's ``server``)."""
    folder = tmp_path_factory.mktemp("git-server")
    prefix = os.environ.get("REDIS_KEY_PREFIX", "ao:") + f"gb{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        **base_env,
        "DATA_DIR": str(folder),
        "QDRANT_PATH": str(folder / "qdrant"),
        "ALLOW_PRIVATE_GIT_HOSTS": "true",
        "SECRET_KEY": "pytest-" + "k" * 40,
        "REDIS_KEY_PREFIX": prefix,
    }
    env.pop("JOB_QUEUE_URL", None)
    local = LocalServer(env, folder / "server.log").start()
    yield local
    local.stop()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitHttpServer]:
    """A served bare repository ``repo.git`` with one commit on main."""
    with served_repo(tmp_path, {"app.py": APP}) as served:
        yield served


def test_a_project_links_to_a_git_remote_syncs_and_shows_its_status(
    console: ConsolePage, api_key: str, remote: GitHttpServer, tmp_path: Path
) -> None:
    # Given the key's token for the remote's host (stored over HTTP)
    stored = httpx.post(
        f"{console.server.url}/api/git/credentials",
        json={"host": remote.host, "token": TOKEN},
        headers={"X-API-Key": api_key},
    )
    assert stored.status_code == 201, stored.text
    head = git("rev-parse", "HEAD", cwd=tmp_path / "seed").strip()
    # And a new project, created on the page
    console.sign_in(api_key, then="/projects.html")
    console.page.fill("#project-name", "synced")
    console.page.click("#create button[type=submit]")
    console.page.locator("#project-title", has_text="synced").wait_for()
    console.page.locator("#git-status", has_text="Not linked").wait_for()
    # When it is linked to the remote
    console.page.fill("#git-remote", f"{remote.url}/repo.git")
    console.page.fill("#git-branch", "main")
    console.page.fill("#git-schedule", "1h")
    console.page.click("#git-link button[type=submit]")
    # Then the link is shown, never synced yet, and the list of projects says so
    link = console.page.locator("#git-status .git-link")
    link.wait_for()
    assert f"{remote.url}/repo.git" in link.inner_text()
    assert "syncs every 1h" in link.inner_text() and "not cloned yet" in link.inner_text()
    assert "last sync never" in link.inner_text()
    row = console.page.locator("#projects-list tbody tr", has_text="synced")
    console.page.wait_for_function(
        "() => [...document.querySelectorAll('#projects-list tbody tr')]"
        ".some((r) => r.textContent.includes('repo.git'))"
    )
    assert "last sync never" in row.inner_text()
    # When "Sync now" runs the sync as a job
    console.page.click("#git-sync")
    job = console.page.locator("#git-jobs .job")
    job.wait_for()
    console.page.wait_for_selector('#git-jobs .job[data-status="succeeded"]', timeout=60_000)
    # Then the workspace is at the remote's commit and the last run succeeded, on the
    # project and in the list
    console.page.wait_for_function(
        "() => document.querySelector('#git-status .git-link code:nth-of-type(2)')"
        " && document.querySelector('#git-status .git-link').textContent.includes('succeeded')"
    )
    assert head[:12] in link.inner_text()
    runs = console.page.locator("#git-status table tbody tr")
    assert runs.count() == 1
    assert "manual" in runs.first.inner_text() and "succeeded" in runs.first.inner_text()
    console.page.wait_for_function(
        "() => [...document.querySelectorAll('#projects-list tbody tr')]"
        ".some((r) => r.textContent.includes('repo.git') && r.textContent.includes('succeeded'))"
    )
    assert remote.authorized > 0  # the token went to the remote
    console.screenshot("projects-git")
