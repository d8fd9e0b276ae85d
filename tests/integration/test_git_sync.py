"""Git credentials and sync against real git: bare repositories served by
``git http-backend`` on loopback behind basic auth, so the token goes the whole way
through GIT_ASKPASS; a conflict resolved through the Ollama double; the scheduler."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.utils.git_http import GitHttpServer
from tests.utils.lambda_events import invoke, response_json

TOKEN = "ghp_" + "T0kenSecret" * 3 + "a1b2"
APP = "def greet(name):\n    return 'Hello, ' + name\n"
TEST = "from app import greet\n\n\ndef test_greet():\n    assert greet('Ann').endswith('Ann!')\n"
MERGED = "def greet(name):\n    return 'Hi there, ' + name + '!'\n"


def call(function: str, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    response = invoke(function, method, path, key, body=body)
    return response["statusCode"], response_json(response)


def git(*args: str, cwd: Path) -> str:
    """Test-side git (the other developer), on the bare repository's path."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


class Ctx:
    """What a runner uses of a JobContext."""

    def __init__(self, key_id: UUID) -> None:
        self.key_id = key_id

    def progress(self, step: str, percent: float, message: str = "") -> None:
        pass


@pytest.fixture
def env(set_env: Callable[..., None]) -> None:
    from common.jobs import queue

    prefix = os.environ.get("REDIS_KEY_PREFIX", "ao:") + f"g{uuid.uuid4().hex[:8]}:"
    set_env(
        ALLOW_PRIVATE_GIT_HOSTS="true",
        SECRET_KEY="pytest-" + "k" * 40,
        REDIS_KEY_PREFIX=prefix,
        JOB_QUEUE_URL=None,
        GIT_SYNC_INTERVAL_SECONDS="0",
        MAX_ATTEMPTS="2",
    )
    queue.reset()


@contextmanager
def served_repo(
    tmp_path: Path, files: dict[str, str], *, name: str = "repo.git"
) -> Iterator[GitHttpServer]:
    """A bare repository ``name`` served over smart HTTP (user git, TOKEN), with one
    commit of ``files`` (path: text) on main, cloned in ``tmp_path/seed``."""
    root = tmp_path / "srv"
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--bare", "-b", "main", name, cwd=root)
    seed = tmp_path / "seed"
    git("clone", "--quiet", str(root / name), str(seed), cwd=tmp_path)
    git("checkout", "--quiet", "-b", "main", cwd=seed)
    for path, text in files.items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(text)
    git("add", ".", cwd=seed)
    git("commit", "--quiet", "-m", "seed", cwd=seed)
    git("push", "--quiet", "origin", "main", cwd=seed)
    server = GitHttpServer(root, user="git", token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitHttpServer]:
    """A served bare repository ``repo.git`` with APP and its test on main."""
    with served_repo(
        tmp_path, {"app.py": APP, "tests/test_app.py": TEST.replace("Ann!", "Ann")}
    ) as server:
        yield server


@pytest.fixture
def linked(env: None, api_key: str, remote: GitHttpServer) -> tuple[str, str]:
    """A project of ``api_key`` linked to the served repository, with its token stored."""
    status, body = call(
        "git_credentials_create",
        "POST",
        "/api/git/credentials",
        api_key,
        {"host": remote.host, "token": TOKEN},
    )
    assert status == 201, body
    status, project = call("projects_create", "POST", "/api/projects", api_key, {"name": "g"})
    assert status == 201
    pid = project["id"]
    status, link = call(
        "projects_git_link",
        "POST",
        f"/api/projects/{pid}/git/link",
        api_key,
        {"remote_url": f"{remote.url}/repo.git", "branch": "main"},
    )
    assert status == 200, link
    return api_key, pid


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Every git command line (as ``ps`` shows it) and environment the service spawns."""
    seen: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.run

    def record(argv: list[str], **kwargs: Any) -> Any:
        seen.append((list(argv), dict(kwargs.get("env") or {})))
        return real(argv, **kwargs)

    monkeypatch.setattr("common.git.sync._spawn", record)
    return seen


def principal_of(key: str) -> Any:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return authenticate(key, store=get_postgres())


def run_sync(key: str, pid: str, push: bool = True) -> dict[str, Any]:
    from common.git.service import run_sync_job

    return run_sync_job({"project_id": pid, "push": push}, Ctx(principal_of(key).key_id))  # type: ignore[arg-type]


def run_merge(key: str, pid: str, **body: Any) -> dict[str, Any]:
    from common.git.service import run_merge_job

    return run_merge_job({"project_id": pid, **body}, Ctx(principal_of(key).key_id))  # type: ignore[arg-type]


def workspace(pid: str) -> Path:
    from common.config import get_settings

    return get_settings().DATA_DIR.resolve() / "git" / pid / "repo"


# -- credentials ----------------------------------------------------------------


def test_credentials_are_stored_encrypted_listed_masked_rotated_and_deleted(
    env: None, api_key: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from common.stores.postgres import get_postgres

    # Given a token stored for GitHub
    status, created = call(
        "git_credentials_create",
        "POST",
        "/api/git/credentials",
        api_key,
        {"host": "GitHub.com", "token": TOKEN},
    )
    assert status == 201, created
    assert (created["provider"], created["host"], created["hint"]) == (
        "github",
        "github.com",
        "ghp_…a1b2",
    )
    # Then the row holds ciphertext, never the token
    with get_postgres().connection() as conn:
        row = conn.execute(
            "SELECT token_ciphertext FROM git_credentials WHERE id = %s", (created["id"],)
        ).fetchone()
    assert row is not None and TOKEN.encode() not in bytes(row["token_ciphertext"])
    # And a second token for the same host is a conflict
    status, body = call(
        "git_credentials_create",
        "POST",
        "/api/git/credentials",
        api_key,
        {"host": "github.com", "token": TOKEN},
    )
    assert status == 409 and body["error"]["code"] == "conflict"
    # When it is listed, rotated and deleted
    status, listed = call("git_credentials_list", "GET", "/api/git/credentials", api_key)
    assert status == 200 and [c["id"] for c in listed] == [created["id"]]
    path = f"/api/git/credentials/{created['id']}"
    new = "ghp_" + "R0tated" * 5 + "z9z9"
    status, rotated = call("git_credentials_update", "PUT", path, api_key, {"token": new})
    assert status == 200 and rotated["hint"] == "ghp_…z9z9"
    from common.auth import create_key

    other = create_key(store=get_postgres(), name="other").key
    status, body = call("git_credentials_delete", "DELETE", path, other)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = call("git_credentials_delete", "DELETE", path, api_key)
    assert status == 204
    status, listed = call("git_credentials_list", "GET", "/api/git/credentials", api_key)
    assert listed == []
    # Then neither token was ever in a log line or a response
    out = capfd.readouterr()
    for text in (out.out, out.err, str(created), str(rotated)):
        assert TOKEN not in text and new not in text


def test_a_private_remote_is_refused_unless_allowed(
    set_env: Callable[..., None], api_key: str
) -> None:
    set_env(ALLOW_PRIVATE_GIT_HOSTS="false")
    status, project = call("projects_create", "POST", "/api/projects", api_key, {"name": "g"})
    for url in ("http://127.0.0.1:9/r.git", "https://169.254.169.254/r.git", "file:///r.git"):
        status, body = call(
            "projects_git_link",
            "POST",
            f"/api/projects/{project['id']}/git/link",
            api_key,
            {"remote_url": url},
        )
        assert status == 422 and body["error"]["code"] == "invalid_input", url


# -- clone, pull, push over smart HTTP --------------------------------------------


def test_clone_and_push_go_through_askpass_and_the_token_is_nowhere_else(
    linked: tuple[str, str],
    remote: GitHttpServer,
    tmp_path: Path,
    spawned: list[tuple[list[str], dict[str, str]]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    key, pid = linked
    # When the sync endpoint is called, a job is queued
    status, accepted = call(
        "projects_git_sync", "POST", f"/api/projects/{pid}/git/sync", key, {"push": True}
    )
    assert status == 202 and accepted["status"] == "queued"
    # And when the job runs, the workspace is cloned through the authenticated server
    result = run_sync(key, pid)
    assert result["status"] == "succeeded" and result["cloned"] is True
    repo = workspace(pid)
    assert (repo / "app.py").read_text() == APP
    assert remote.authorized > 0
    # When a local commit is synced, it is pushed
    (repo / "notes.txt").write_text("pushed\n")
    git("add", "notes.txt", cwd=repo)
    git("commit", "--quiet", "-m", "notes", cwd=repo)
    assert run_sync(key, pid)["cloned"] is False
    bare = tmp_path / "srv" / "repo.git"
    assert git("show", "main:notes.txt", cwd=bare) == "pushed\n"
    # Then the status lists the runs and the workspace's commit
    status, state = call("projects_git_status", "GET", f"/api/projects/{pid}/git/status", key)
    assert status == 200 and state["head"] == git("rev-parse", "main", cwd=bare).strip()
    assert state["link"]["remote_url"] == f"{remote.url}/repo.git"
    assert state["runs"][0]["status"] in ("queued", "succeeded")
    # And the token was never in .git/config (nor any workspace file), argv, a URL
    # the server saw, a log line or a response
    for file in repo.parent.rglob("*"):
        if file.is_file():
            assert TOKEN.encode() not in file.read_bytes(), file
    assert spawned and all(TOKEN not in arg for argv, _ in spawned for arg in argv)
    with_token = [e for _, e in spawned if TOKEN in e.values()]
    assert with_token and all(e["GIT_ASKPASS"].endswith("askpass.sh") for e in with_token)
    assert all(TOKEN not in line for line in remote.requests)
    out = capfd.readouterr()
    for text in (out.out, out.err, str(accepted), str(state), str(result)):
        assert TOKEN not in text


def test_a_wrong_token_fails_without_showing_it(
    linked: tuple[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    from common.errors import AppError

    key, pid = linked
    status, [cred] = call("git_credentials_list", "GET", "/api/git/credentials", key)
    wrong = "ghp_" + "Wr0ng" * 8
    call(
        "git_credentials_update", "PUT", f"/api/git/credentials/{cred['id']}", key, {"token": wrong}
    )
    with pytest.raises(AppError) as failed:
        run_sync(key, pid)
    assert failed.value.code == "git_failed"
    out = capfd.readouterr()
    for text in (failed.value.message, out.out, out.err):
        assert wrong not in text and TOKEN not in text


# -- merge with conflicts ------------------------------------------------------------


def diverge(tmp_path: Path, remote: GitHttpServer) -> None:
    """main and feature both change greet()'s line, on the served repository."""
    other = tmp_path / "other"
    git("clone", "--quiet", str(tmp_path / "srv" / "repo.git"), str(other), cwd=tmp_path)
    git("checkout", "--quiet", "-b", "feature", cwd=other)
    (other / "app.py").write_text(APP.replace("'Hello, ' + name", "'Hello, ' + name + '!'"))
    (other / "tests" / "test_app.py").write_text(TEST)
    git("commit", "--quiet", "-am", "exclaim", cwd=other)
    git("push", "--quiet", "origin", "feature", cwd=other)
    git("checkout", "--quiet", "main", cwd=other)
    (other / "app.py").write_text(APP.replace("Hello, ", "Hi there, "))
    git("commit", "--quiet", "-am", "friendlier", cwd=other)
    git("push", "--quiet", "origin", "main", cwd=other)


def test_a_conflict_is_proposed_then_accepted(
    linked: tuple[str, str], remote: GitHttpServer, tmp_path: Path, ollama: Any
) -> None:
    key, pid = linked
    run_sync(key, pid, push=False)
    diverge(tmp_path, remote)
    status, accepted = call(
        "projects_git_merge", "POST", f"/api/projects/{pid}/git/merge", key, {"branch": "feature"}
    )
    assert status == 202, accepted
    # When the merge runs, the model's resolution is proposed, not committed
    ollama.script(f"```python\n{MERGED}```\nKept both changes.")
    result = run_merge(key, pid, branch="feature")
    assert result["status"] == "conflicts" and result["conflicts"] == ["app.py"]
    proposal = result["proposal"]
    assert proposal["files"][0]["content"] == MERGED and proposal["ok"] is True
    assert proposal["tests"] and all(t["ok"] for t in proposal["tests"])
    bare = tmp_path / "srv" / "repo.git"
    assert "Hi there, ' + name\n" in git("show", "main:app.py", cwd=bare)
    assert git("status", "--porcelain", cwd=workspace(pid)) == ""
    # When the caller accepts it (with a message: no model call), it is committed and pushed
    result = run_merge(key, pid, proposal_id=proposal["id"], accept=True, message="Merge feature")
    assert result["status"] == "merged" and result["resolved"] == ["app.py"]
    assert git("show", "main:app.py", cwd=bare) == MERGED
    assert git("log", "-1", "--format=%s%n%P", "main", cwd=bare).split()[0] == "Merge"


def test_auto_commits_a_checked_resolution_with_a_model_written_message(
    linked: tuple[str, str], remote: GitHttpServer, tmp_path: Path, ollama: Any
) -> None:
    key, pid = linked
    run_sync(key, pid, push=False)
    diverge(tmp_path, remote)
    # Given a resolution with markers left (refused), then a good one, then a message
    ollama.script("```python\n<<<<<<< HEAD\nx = 1\n=======\nx = 2\n>>>>>>> feature\n```")
    ollama.script(f"```python\n{MERGED}```")
    ollama.script("Merge feature: greet with an exclamation mark")
    result = run_merge(key, pid, branch="feature", auto=True)
    assert result["status"] == "merged", result
    assert result["message"] == "Merge feature: greet with an exclamation mark"
    bare = tmp_path / "srv" / "repo.git"
    assert git("show", "main:app.py", cwd=bare) == MERGED
    assert len(git("log", "-1", "--format=%P", "main", cwd=bare).split()) == 2


# -- the scheduler -------------------------------------------------------------------


def test_the_scheduler_queues_due_projects_only_and_never_one_twice(
    linked: tuple[str, str], remote: GitHttpServer, api_key: str
) -> None:
    from common.config import get_settings
    from common.git.credentials import get_credential_manager
    from common.git.service import sync_project
    from common.git.store import get_git_sync_store
    from common.scheduler import run_due
    from common.stores.postgres import get_postgres

    key, due = linked
    store = get_git_sync_store()
    url = f"{remote.url}/repo.git"
    ids = {}
    for name, schedule in (("later", "1h"), ("never", None)):
        _, project = call("projects_create", "POST", "/api/projects", key, {"name": name})
        call(
            "projects_git_link",
            "POST",
            f"/api/projects/{project['id']}/git/link",
            key,
            {"remote_url": url, "schedule": schedule},
        )
        ids[name] = project["id"]
    call(
        "projects_git_link",
        "POST",
        f"/api/projects/{due}/git/link",
        key,
        {"remote_url": url, "schedule": "15m"},
    )
    with get_postgres().connection() as conn:
        conn.execute(
            "UPDATE projects SET next_sync_at = now() - interval '1 minute' WHERE id = %s", (due,)
        )
    # When a scheduler runs while another holds the due project's row, it skips it
    with get_postgres().connection() as conn:
        conn.execute("SELECT 1 FROM projects WHERE id = %s FOR UPDATE", (due,))
        assert run_due(store=store) == []
    # When it runs, only the due project gets a job, with a recorded run
    [queued] = run_due(store=store)
    assert str(queued["project_id"]) == due and queued["job_id"] is not None
    with get_postgres().connection() as conn:
        job = conn.execute(
            "SELECT kind, project_id FROM jobs WHERE id = %s", (queued["job_id"],)
        ).fetchone()
    assert job is not None and job["kind"] == "git_sync" and str(job["project_id"]) == due
    # And a second pass right after finds nothing due
    assert run_due(store=store) == []
    # When a sync runs while another holds the project's lock, it is skipped and recorded
    with store.project_lock(UUID(due)) as got:
        assert got
        skipped = sync_project(
            project_id=UUID(due),
            owner_key_id=None,
            run_id=queued["run_id"],
            push=False,
            store=store,
            credentials=get_credential_manager(),
            settings=get_settings(),
        )
    assert skipped == {"status": "skipped"}
    [run] = [r for r in store.list_runs(project_id=UUID(due)) if r["id"] == queued["run_id"]]
    assert run["trigger"] == "schedule" and run["status"] == "skipped"


def test_a_clean_merge_is_committed_with_a_model_written_message(
    linked: tuple[str, str], tmp_path: Path, ollama: Any
) -> None:
    key, pid = linked
    run_sync(key, pid, push=False)
    other = tmp_path / "other"
    git("clone", "--quiet", str(tmp_path / "srv" / "repo.git"), str(other), cwd=tmp_path)
    git("checkout", "--quiet", "-b", "docs", cwd=other)
    (other / "README.md").write_text("# greet\n")
    git("add", "README.md", cwd=other)
    git("commit", "--quiet", "-m", "docs", cwd=other)
    git("push", "--quiet", "origin", "docs", cwd=other)
    ollama.script("Add a README for greet")
    result = run_merge(key, pid, branch="docs")
    assert result == {**result, "status": "merged", "message": "Add a README for greet"}
    bare = tmp_path / "srv" / "repo.git"
    assert git("show", "main:README.md", cwd=bare) == "# greet\n"
    [diff_request] = ollama.requests_to("/api/chat")
    assert "README.md" in str(diff_request)


# -- merge proposals live in PostgreSQL -------------------------------------------------


def propose(key: str, pid: str, tmp_path: Path, remote: GitHttpServer, ollama: Any) -> str:
    """A conflicted merge of feature into main; the stored proposal's id."""
    run_sync(key, pid, push=False)
    diverge(tmp_path, remote)
    ollama.script(f"```python\n{MERGED}```\nKept both changes.")
    result = run_merge(key, pid, branch="feature")
    assert result["status"] == "conflicts", result
    return str(result["proposal"]["id"])


def proposal_row(proposal_id: str) -> dict[str, Any]:
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        row = conn.execute(
            "SELECT status, ok, files, merge_commit, decided_at FROM git_merge_proposals"
            " WHERE id = %s",
            (proposal_id,),
        ).fetchone()
    assert row is not None
    return row


def test_a_proposal_is_accepted_by_a_worker_that_did_not_make_it(
    linked: tuple[str, str], remote: GitHttpServer, tmp_path: Path, ollama: Any
) -> None:
    import shutil

    key, pid = linked
    # Given a proposal stored by one worker
    proposal_id = propose(key, pid, tmp_path, remote, ollama)
    row = proposal_row(proposal_id)
    assert row["status"] == "proposed" and row["ok"] is True
    assert row["files"][0]["path"] == "app.py" and row["files"][0]["content"] == MERGED
    # And nothing of it is kept in the workspace
    assert not list(workspace(pid).parent.rglob("*.json"))
    # When another worker (a fresh workspace: a new Lambda instance) accepts it
    shutil.rmtree(workspace(pid).parent)
    result = run_merge(key, pid, proposal_id=proposal_id, accept=True, message="Merge feature")
    # Then it is committed and pushed, and recorded as accepted with its commit
    assert result["status"] == "merged" and result["proposal_id"] == proposal_id
    bare = tmp_path / "srv" / "repo.git"
    assert git("show", "main:app.py", cwd=bare) == MERGED
    row = proposal_row(proposal_id)
    assert row["status"] == "accepted" and row["merge_commit"] == result["head"]
    assert row["decided_at"] is not None
    # And the status lists it
    status, state = call("projects_git_status", "GET", f"/api/projects/{pid}/git/status", key)
    assert status == 200
    [listed] = state["proposals"]
    assert listed["id"] == proposal_id and listed["status"] == "accepted"
    assert listed["paths"] == ["app.py"]
    # When it is accepted a second time, that is a conflict and nothing is committed
    from common.errors import Conflict

    with pytest.raises(Conflict, match="already accepted"):
        run_merge(key, pid, proposal_id=proposal_id, accept=True, message="again")
    assert git("rev-parse", "main", cwd=bare).strip() == result["head"]


def test_a_rejected_proposal_cannot_be_accepted(
    linked: tuple[str, str], remote: GitHttpServer, tmp_path: Path, ollama: Any
) -> None:
    from common.errors import Conflict

    key, pid = linked
    proposal_id = propose(key, pid, tmp_path, remote, ollama)
    bare = tmp_path / "srv" / "repo.git"
    before = git("rev-parse", "main", cwd=bare)
    # When the caller rejects it (proposal_id without accept)
    status, accepted = call(
        "projects_git_merge",
        "POST",
        f"/api/projects/{pid}/git/merge",
        key,
        {"proposal_id": proposal_id},
    )
    assert status == 202, accepted
    assert run_merge(key, pid, proposal_id=proposal_id) == {
        "status": "rejected",
        "proposal_id": proposal_id,
    }
    # Then it is recorded so, and accepting it afterwards is refused
    assert proposal_row(proposal_id)["status"] == "rejected"
    with pytest.raises(Conflict, match="already rejected"):
        run_merge(key, pid, proposal_id=proposal_id, accept=True, message="Merge")
    assert git("rev-parse", "main", cwd=bare) == before


def test_a_proposal_goes_stale_when_a_branch_moves(
    linked: tuple[str, str], remote: GitHttpServer, tmp_path: Path, ollama: Any
) -> None:
    from common.errors import Conflict, NotFound

    key, pid = linked
    proposal_id = propose(key, pid, tmp_path, remote, ollama)
    # Given main moved after the proposal was made
    other = tmp_path / "other"
    git("pull", "--quiet", "origin", "main", cwd=other)
    (other / "notes.txt").write_text("later\n")
    git("add", "notes.txt", cwd=other)
    git("commit", "--quiet", "-m", "later", cwd=other)
    git("push", "--quiet", "origin", "main", cwd=other)
    # When it is accepted, that is a conflict, and it is marked stale
    with pytest.raises(Conflict, match="moved"):
        run_merge(key, pid, proposal_id=proposal_id, accept=True, message="Merge")
    assert proposal_row(proposal_id)["status"] == "stale"
    # And an unknown proposal id is not found
    with pytest.raises(NotFound):
        run_merge(key, pid, proposal_id=str(uuid.uuid4()), accept=True, message="Merge")


def test_a_merge_body_takes_a_branch_or_a_proposal_not_both(
    linked: tuple[str, str],
) -> None:
    key, pid = linked
    for body in ({"branch": "feature", "proposal_id": str(uuid.uuid4())}, {"accept": True}, {}):
        status, error = call(
            "projects_git_merge", "POST", f"/api/projects/{pid}/git/merge", key, body
        )
        assert status == 422 and error["error"]["code"] == "invalid_input", body


# -- a worker without git (Lambda's Python runtime without the GitLayer) ------------------


def test_a_worker_without_git_fails_the_job_with_a_typed_error_and_records_it(
    linked: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from common.errors import GitUnavailable
    from common.git.service import run_sync_job
    from common.git.store import get_git_sync_store

    key, pid = linked
    store = get_git_sync_store()
    run = store.insert_run(project_id=UUID(pid), trigger="manual")
    # Given a PATH without git, as on Lambda's Python runtime
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    # When a sync job runs, it fails with git_unavailable (503), saying what to deploy
    with pytest.raises(GitUnavailable) as failed:
        run_sync_job(
            {"project_id": pid, "run_id": str(run["id"])},
            Ctx(principal_of(key).key_id),  # type: ignore[arg-type]
        )
    assert (failed.value.code, failed.value.status) == ("git_unavailable", 503)
    assert "GitLayer" in failed.value.message
    # And the run is recorded as failed with that message
    [recorded] = [r for r in store.list_runs(project_id=UUID(pid)) if r["id"] == run["id"]]
    assert recorded["status"] == "failed" and "GitLayer" in recorded["message"]


def test_a_missing_folder_is_a_git_error_not_a_missing_git(tmp_path: Path) -> None:
    from common.git.sync import GitError, run_git

    # A FileNotFoundError for the cwd must not be reported as "git is not installed"
    with pytest.raises(GitError) as failed:
        run_git(["status"], cwd=tmp_path / "gone", askpass_dir=tmp_path)
    assert failed.value.code == "git_failed"


@pytest.mark.skipif(
    not Path("/lib64/ld-linux-x86-64.so.2").exists(), reason="collect.sh reads x86-64 binaries"
)
def test_the_git_layer_tree_alone_runs_a_sync(
    linked: tuple[str, str],
    remote: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spawned: list[tuple[list[str], dict[str, str]]],
) -> None:
    """layers/git/collect.sh on this machine's git: the same selection of files as the
    GitLayer (git, its https helper, their libraries), used as Lambda uses a layer."""
    layer = tmp_path / "opt"
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        ["sh", str(root / "layers" / "git" / "collect.sh"), str(layer)],
        check=True,
        capture_output=True,
    )
    # Given nothing but the layer on PATH, and the variables template.yaml sets
    monkeypatch.setenv("PATH", str(layer / "bin"))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(layer / "lib"))
    monkeypatch.setenv("GIT_EXEC_PATH", str(layer / "libexec" / "git-core"))
    monkeypatch.setenv("GIT_TEMPLATE_DIR", str(layer / "share" / "git-core" / "templates"))
    key, pid = linked
    # When the project is cloned and a commit pushed, over smart HTTP with the token
    assert run_sync(key, pid, push=False)["cloned"] is True
    repo = workspace(pid)
    (repo / "layer.txt").write_text("from the layer\n")
    monkeypatch.setenv("PATH", f"{layer / 'bin'}:{os.defpath}")  # the test's own git below
    git("add", "layer.txt", cwd=repo)
    git("commit", "--quiet", "-m", "layer", cwd=repo)
    monkeypatch.setenv("PATH", str(layer / "bin"))
    result = run_sync(key, pid)
    # Then it reached the server, authenticated
    assert result["status"] == "succeeded" and remote.authorized > 0
    bare = tmp_path / "srv" / "repo.git"
    assert git("show", "main:layer.txt", cwd=bare) == "from the layer\n"
    # And every git the service ran was told where the layer's helpers and libraries are
    assert spawned and all(
        env["GIT_EXEC_PATH"] == str(layer / "libexec" / "git-core")
        and env["LD_LIBRARY_PATH"] == str(layer / "lib")
        for _, env in spawned
    )
