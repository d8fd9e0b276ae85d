"""A repository from its sources to verified work, on the running local server.

A small Python repository whose tests import a real third-party package from the
registry (``humanize``, not installed in the server's venv) is pushed to a local
``git http-backend``, linked and synced: its files appear, the index job runs, a
search finds a known function, and ``/api/fix`` with ``project_id`` comes back
verified with the dependency installed in the project's environment. A second
sync after a new commit re-reads only the changed file. The same repository as an
uploaded ``.tar.gz`` goes through the same flow.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_actions import fenced
from tests.integration.test_git_sync import TOKEN, git, served_repo
from tests.utils.git_http import GitHttpServer
from tests.utils.server import LocalServer

SIZES = (
    "import humanize\n\n\n"
    "def describe_size(n: int) -> str:\n"
    '    """A file size for people, like "1.0 kB"."""\n'
    "    return humanize.naturalsize(n + 1)\n"
)
SIZES_FIXED = SIZES.replace("n + 1", "n")
TEST_SIZES = (
    "from shelf.sizes import describe_size\n\n\n"
    "def test_describe_size():\n"
    '    assert describe_size(1000) == "1.0 kB"\n'
    '    assert describe_size(0) == "0 Bytes"\n'
)
GREETING = 'def greet_reader(name: str) -> str:\n    return f"Welcome to the shelf, {name}"\n'
REPO = {
    "requirements.txt": "humanize==4.12.1\n",
    "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "shelf/__init__.py": "",
    "shelf/sizes.py": SIZES,
    "shelf/greeting.py": GREETING,
    "tests/test_sizes.py": TEST_SIZES,
}


def _registry_reachable() -> bool:
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            "/tmp/ao-probe",
            "humanize==4.12.1",
            "-q",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode == 0


pytestmark = pytest.mark.skipif(
    os.environ.get("AO_OFFLINE") == "1" or not _registry_reachable(),
    reason="the package index is not reachable: a project environment cannot be built",
)


@pytest.fixture(scope="module")
def server(
    base_env: dict[str, str], _session_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    """A local server that may reach git remotes on loopback, embedding with MiniLM."""
    folder = tmp_path_factory.mktemp("repo-server")
    prefix = os.environ.get("REDIS_KEY_PREFIX", "ao:") + f"rf{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        **base_env,
        "DATA_DIR": str(folder),
        "QDRANT_PATH": str(folder / "qdrant"),
        "ALLOW_PRIVATE_GIT_HOSTS": "true",
        "SECRET_KEY": "pytest-" + "k" * 40,
        "REDIS_KEY_PREFIX": prefix,
        "EMBEDDING_PROVIDER": "embedded",
    }
    env.pop("JOB_QUEUE_URL", None)
    local = LocalServer(env, folder / "server.log").start()
    yield local
    local.stop()


def call(server: LocalServer, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, server.url + path, headers={"X-API-Key": key}, timeout=120, **kwargs
    )


def wait_job(server: LocalServer, key: str, job_id: str, timeout_s: float = 240) -> Any:
    deadline = time.monotonic() + timeout_s
    job: Any = None
    while time.monotonic() < deadline:
        job = call(server, key, "GET", f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job not finished in {timeout_s} s: {job}\n{server.logs()[-3000:]}")


def wait_indexed(server: LocalServer, key: str, pid: str, revision: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = call(server, key, "GET", f"/api/projects/{pid}").json()
        index = shown["index"]
        if index["job_id"]:
            job = wait_job(server, key, index["job_id"])
            assert job["status"] == "succeeded", job
            shown = call(server, key, "GET", f"/api/projects/{pid}").json()
            if shown["index"]["state"] == "ready" and shown["index"]["revision"] == revision:
                return shown
        time.sleep(0.3)
    raise AssertionError(f"not indexed at {revision}: {shown}")


def verified_fix(server: LocalServer, key: str, ollama: Any, pid: str) -> dict[str, Any]:
    ollama.script(fenced(SIZES_FIXED))
    response = call(
        server,
        key,
        "POST",
        "/api/fix",
        json={
            "project_id": pid,
            "path": "shelf/sizes.py",
            "error": "tests/test_sizes.py fails",
            "options": {"async": True, "timeout_s": 120},
        },
    )
    assert response.status_code == 202, response.text
    job = wait_job(server, key, response.json()["job_id"], timeout_s=600)
    assert job["status"] == "succeeded", job
    return job["result"]


def assert_fix_verified(result: dict[str, Any]) -> None:
    assert result["verified"] is True, result
    assert "-    return humanize.naturalsize(n + 1)" in result["diff"]
    before = {c["name"] for c in result["verification"]["before"]}
    after = {c["name"] for c in result["verification"]["after"]}
    assert "test:tests/test_sizes.py::test_describe_size" in before
    assert "test:tests/test_sizes.py::test_describe_size" in after
    assert result["verification"]["tests_ran"] is True


def test_a_linked_repository_is_stored_indexed_and_fixed_with_its_own_dependencies(
    server: LocalServer, api_key: str, ollama: Any, tmp_path: Path
) -> None:
    with served_repo(tmp_path, REPO) as remote:
        _linked_flow(server, api_key, ollama, remote, tmp_path)


def _linked_flow(
    server: LocalServer, key: str, ollama: Any, remote: GitHttpServer, tmp_path: Path
) -> None:
    # Given a project linked to the repository, with the host's token stored
    stored = call(
        server, key, "POST", "/api/git/credentials", json={"host": remote.host, "token": TOKEN}
    )
    assert stored.status_code == 201, stored.text
    pid = call(server, key, "POST", "/api/projects", json={"name": "shelf"}).json()["id"]
    link = call(
        server,
        key,
        "POST",
        f"/api/projects/{pid}/git/link",
        json={"remote_url": f"{remote.url}/repo.git", "branch": "main"},
    )
    assert link.status_code == 200, link.text
    # When it is synced
    sync = call(server, key, "POST", f"/api/projects/{pid}/git/sync", json={"push": False})
    assert sync.status_code == 202, sync.text
    synced = wait_job(server, key, sync.json()["job_id"])
    assert synced["status"] == "succeeded", synced
    head = synced["result"]["head"]
    # Then its files are the project's, at the commit, and the index job runs
    shown = wait_indexed(server, key, pid, head)
    assert {f["path"] for f in shown["files"]} == set(REPO)
    assert shown["source"] == {**shown["source"], "kind": "git", "revision": head, "ref": "main"}
    assert shown["index"]["chunks"] >= 3
    # And a search finds a known function, from that revision
    found = call(
        server,
        key,
        "POST",
        f"/api/projects/{pid}/search",
        json={"query": "welcome a reader to the shelf", "k": 3},
    ).json()
    assert found["revision"] == head and found["hits"][0]["path"] == "shelf/greeting.py"
    # When the failing test's file is fixed with project_id
    result = verified_fix(server, key, ollama, pid)
    # Then the fix is verified by the repository's own test, with humanize installed
    assert_fix_verified(result)
    shown = call(server, key, "GET", f"/api/projects/{pid}").json()
    assert shown["environment"]["state"] == "ready", shown["environment"]
    assert "requirements.txt" in shown["environment"]["manifests"]

    # When a new commit changes one file and the project syncs again
    seed = tmp_path / "seed"
    (seed / "shelf/greeting.py").write_text(GREETING.replace("Welcome", "Hello"))
    git("commit", "--quiet", "-am", "friendlier", cwd=seed)
    git("push", "--quiet", "origin", "main", cwd=seed)
    sync = call(server, key, "POST", f"/api/projects/{pid}/git/sync", json={"push": False})
    synced = wait_job(server, key, sync.json()["job_id"])
    assert synced["status"] == "succeeded", synced
    assert synced["result"]["files"]["changed"] == ["shelf/greeting.py"]
    second = synced["result"]["head"]
    shown = wait_indexed(server, key, pid, second)
    # Then only the changed file was read again by the index job
    report = wait_job(server, key, shown["index"]["job_id"])["result"]
    assert report["files_read"] == 1 and report["embedded"] >= 1, report


def _tar_gz(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def upload(server: LocalServer, key: str, name: str, files: dict[str, str]) -> str:
    """A new project holding ``files`` as an uploaded ``.tar.gz``, once it is indexed."""
    import hashlib

    pid = call(server, key, "POST", "/api/projects", json={"name": name}).json()["id"]
    data = _tar_gz(files)
    started = call(
        server,
        key,
        "POST",
        f"/api/projects/{pid}/uploads",
        json={"filename": f"{name}.tar.gz", "size": len(data)},
    )
    assert started.status_code == 201, started.text
    put = httpx.put(
        server.url + started.json()["upload_url"],
        headers={"X-API-Key": key, "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
        content=data,
        timeout=60,
    )
    assert put.status_code == 200 and put.json()["state"] == "complete", put.text
    shown = wait_indexed(server, key, pid, hashlib.sha256(data).hexdigest())
    assert shown["source"]["kind"] == "upload" and shown["source"]["ref"] == f"{name}.tar.gz"
    assert {f["path"] for f in shown["files"]} == set(files)
    return pid


def test_an_uploaded_archive_goes_through_the_same_flow(
    server: LocalServer, api_key: str, ollama: Any
) -> None:
    pid = upload(server, api_key, "shelf", REPO)
    assert_fix_verified(verified_fix(server, api_key, ollama, pid))


def fix_checks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result["verification"]["before"]}


def test_a_manifest_that_cannot_install_is_environment_failed_not_a_test_failure(
    server: LocalServer, api_key: str, ollama: Any
) -> None:
    # Given a repository whose requirements name a version the index does not have
    broken = {**REPO, "requirements.txt": "humanize==0.0.0.999\n"}
    pid = upload(server, api_key, "broken", broken)
    # When a fix is asked for
    result = verified_fix(server, api_key, ollama, pid)
    # Then it is not verified, and the answer says the environment failed, with pip's
    # own words, never that the repository's test failed
    assert result["verified"] is False
    checks = fix_checks(result)
    assert checks["environment"]["ok"] is False
    message = checks["environment"]["message"]
    assert message.startswith("environment_failed") and "humanize==0.0.0.999" in message
    assert not any(name.startswith("test:") for name in checks), checks
    # And the project says so too, with every file still stored
    shown = call(server, api_key, "GET", f"/api/projects/{pid}").json()
    assert shown["environment"]["state"] == "failed", shown["environment"]
    assert "humanize" in (shown["environment"]["error"] or "")
    assert {f["path"] for f in shown["files"]} == set(broken)


@pytest.mark.parametrize(
    ("files", "says"),
    [
        pytest.param(
            {
                "package.json": '{"name": "shelf", "scripts": {"test": "jest --ci"}}\n',
                "shelf/__init__.py": "",
                "shelf/sizes.py": SIZES,
            },
            "runs jest, which this server does not run",
            id="unknown-test-command",
        ),
        pytest.param(
            {"requirements.txt": "humanize==4.12.1\n", "shelf/sizes.py": SIZES},
            "no tests found",
            id="no-tests",
        ),
    ],
)
def test_a_repository_whose_tests_cannot_run_says_why(
    server: LocalServer, api_key: str, ollama: Any, files: dict[str, str], says: str
) -> None:
    pid = upload(server, api_key, "untested", files)
    result = verified_fix(server, api_key, ollama, pid)
    # The fix is there, and the answer says plainly that no repository test judged it
    assert "-    return humanize.naturalsize(n + 1)" in result["diff"]
    assert result["verification"]["tests_ran"] is False
    assert says in (result["verification"]["no_tests_reason"] or ""), result["verification"]
    assert not any(c["name"].startswith("test") for c in result["verification"]["before"])
