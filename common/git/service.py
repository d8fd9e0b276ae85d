"""GitSyncService: link a project to a remote, sync it, merge a branch with AI help.

Each project has a workspace, ``DATA_DIR/git/<project_id>/repo``, a clone of its
remote. Clone, pull, push and merge run as jobs (kinds ``git_sync`` and
``git_merge``); a PostgreSQL advisory lock per project makes sure two of them
(two schedulers, a schedule and a click) never work in one workspace at once.

A merge that conflicts gets a proposal: merged content per conflicted file from
the model, checked (no markers left, it parses, the project's tests pass in the
sandbox when it has tests). It is committed only when ``auto`` is set and every
check passed, or when the caller accepts the proposal by id; otherwise the merge
is aborted and the workspace is left as it was. Proposals live in PostgreSQL
(``git_merge_proposals``), not in the workspace: on AWS the accept may run on
another Lambda instance, whose workspace is a fresh clone.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from common.config import Settings
from common.errors import Conflict, InvalidInput, ModelOutputInvalid, NotFound
from common.git import sync as gitcmd
from common.git.credentials import GitCredentialManager
from common.git.store import GitSyncStore
from common.logs import get_logger

if TYPE_CHECKING:
    from common.auth import Principal
    from common.jobs import JobAccepted, JobContext
    from common.models import ModelClient
    from common.storage.tree import TreeChange

log = get_logger("git.service")

MIN_INTERVAL_S = 300  # the AWS rule fires every 5 minutes: a shorter schedule cannot hold
_SCHEDULE = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
# A branch name git accepts and that cannot be read as an option or a range.
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
_MARKERS = re.compile(r"^(<{7}|>{7})(\s|$)|^={7}$", re.M)
_MAX_FILE_BYTES = 200_000
_MAX_DIFF_CHARS = 12_000


def _check_branch(value: str) -> str:
    if not _BRANCH.match(value):
        raise ValueError("must be a branch name (letters, digits, . _ / -)")
    return value


Branch = Annotated[str, AfterValidator(_check_branch)]


def parse_schedule(text: str) -> int | None:
    """Seconds between syncs for ``"15m"``, ``"2h"``, ``"1d"``; None if malformed."""
    match = _SCHEDULE.match(text.strip())
    if match is None:
        return None
    return int(match[1]) * _UNITS[match[2]]


class GitLinkInput(BaseModel):
    remote_url: str = Field(max_length=2000, description="https:// or ssh:// (git@host:path).")
    branch: Branch = Field("main", description="The branch the project follows.")
    schedule: str | None = Field(
        None, description='Sync every "15m", "2h" or "1d" (at least 5 minutes); null: never.'
    )
    host_kind: Literal["github", "gitlab", "bitbucket"] | None = Field(
        None,
        description=(
            "The REST API the host speaks (pull requests, review comments, statuses);"
            " derived for github.com, gitlab.com and bitbucket.org."
        ),
    )
    api_url: str | None = Field(
        None,
        max_length=2000,
        description="The host's API base, for a self-hosted GitLab or GitHub Enterprise.",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        seconds = parse_schedule(value)
        if seconds is None or seconds < MIN_INTERVAL_S:
            raise ValueError('must be like "15m", "2h" or "1d", and at least 5m')
        return value.strip()


class GitLinkPublic(BaseModel):
    project_id: UUID
    remote_url: str | None
    branch: str | None
    schedule: str | None
    next_sync_at: datetime | None
    host_kind: str | None = None
    api_url: str | None = None


class GitSyncInput(BaseModel):
    push: bool = Field(True, description="Push local commits after pulling.")


class GitMergeInput(BaseModel):
    branch: Branch | None = Field(None, description="The remote branch to merge in.")
    auto: bool = Field(False, description="Commit a resolution whose checks all pass.")
    message: str | None = Field(
        None, max_length=5000, description="Commit message; unset: written by the model."
    )
    proposal_id: UUID | None = Field(None, description="A proposal from an earlier merge.")
    accept: bool = Field(
        False, description="With proposal_id: commit that proposal (false: reject it)."
    )

    @model_validator(mode="after")
    def _one_way(self) -> GitMergeInput:
        if self.accept and self.proposal_id is None:
            raise ValueError("accept needs a proposal_id")
        if self.proposal_id is not None and self.branch is not None:
            raise ValueError("give a branch (a new merge) or a proposal_id, not both")
        if self.proposal_id is None and self.branch is None:
            raise ValueError("branch is required (or proposal_id with accept)")
        return self


class GitRunPublic(BaseModel):
    id: UUID
    trigger: Literal["schedule", "manual"]
    job_id: UUID | None
    status: str
    message: str | None
    created_at: datetime
    finished_at: datetime | None


ProposalStatus = Literal["proposed", "accepted", "rejected", "stale"]


class GitProposalSummary(BaseModel):
    id: UUID
    branch: str = Field(description="The branch merged in.")
    status: ProposalStatus
    ok: bool = Field(description="Every check of every file passed.")
    paths: list[str] = Field(description="The conflicted files it resolves.")
    created_at: datetime
    decided_at: datetime | None


class GitStatusOutput(BaseModel):
    link: GitLinkPublic
    head: str | None = Field(description="The workspace's commit, if it was cloned.")
    runs: list[GitRunPublic]
    proposals: list[GitProposalSummary] = Field(
        [], description="The latest merge proposals: accept or reject one by its id."
    )


def _link_public(row: dict[str, Any]) -> GitLinkPublic:
    return GitLinkPublic(
        project_id=row["id"],
        remote_url=row["git_remote"],
        branch=row["git_branch"],
        schedule=row["sync_schedule"],
        next_sync_at=row["next_sync_at"],
        host_kind=row.get("git_host_kind"),
        api_url=row.get("git_api_url"),
    )


def workspace_of(settings: Settings, project_id: UUID) -> Path:
    return settings.DATA_DIR.expanduser().resolve() / "git" / str(project_id)


# -- the API ------------------------------------------------------------------


def link_project(
    *,
    project_id: UUID,
    owner_key_id: UUID,
    body: GitLinkInput,
    store: GitSyncStore,
    settings: Settings,
) -> GitLinkPublic:
    """Link (or relink) a project to a remote; a new remote drops the old workspace.

    Raises
    ------
    NotFound
        Not the caller's project.
    InvalidInput
        The URL is refused by the remote policy.
    """
    remote = gitcmd.check_remote_url(
        body.remote_url, allow_private=settings.ALLOW_PRIVATE_GIT_HOSTS
    )
    api_url = None
    if body.api_url is not None:
        # The token goes to this address: the same policy as the remote.
        checked = gitcmd.check_remote_url(
            body.api_url, allow_private=settings.ALLOW_PRIVATE_GIT_HOSTS
        )
        if checked.scheme != "https" or "://" not in checked.url:
            raise InvalidInput("api_url must be an https:// URL")
        api_url = checked.url.rstrip("/")
    before = store.find_link(project_id=project_id, owner_key_id=owner_key_id)
    if before is None:
        raise NotFound(f"no project {project_id}")
    row = store.set_link(
        project_id=project_id,
        owner_key_id=owner_key_id,
        remote=remote.url,
        branch=body.branch,
        schedule=body.schedule,
        interval_s=parse_schedule(body.schedule) if body.schedule else None,
        host_kind=body.host_kind,
        api_url=api_url,
    )
    if row is None:
        raise NotFound(f"no project {project_id}")
    if before["git_remote"] != remote.url or before["git_branch"] != body.branch:
        shutil.rmtree(workspace_of(settings, project_id), ignore_errors=True)
    return _link_public(row)


def linked_row(store: GitSyncStore, project_id: UUID, owner_key_id: UUID | None) -> dict[str, Any]:
    row = store.find_link(project_id=project_id, owner_key_id=owner_key_id)
    if row is None:
        raise NotFound(f"no project {project_id}")
    if not row["git_remote"]:
        raise InvalidInput("the project has no git remote: link one first (POST .../git/link)")
    return row


def submit_sync(
    *,
    project_id: UUID,
    principal: Principal,
    body: GitSyncInput,
    store: GitSyncStore,
    trigger: Literal["manual", "schedule"] = "manual",
    run_id: UUID | None = None,
) -> JobAccepted:
    """Queue a ``git_sync`` job (clone or pull, then push) and record its run."""
    from common.jobs import submit_job

    linked_row(store, project_id, principal.key_id)
    if run_id is None:
        run_id = UUID(str(store.insert_run(project_id=project_id, trigger=trigger)["id"]))
    accepted = submit_job(
        kind="git_sync",
        input={"project_id": str(project_id), "run_id": str(run_id), "push": body.push},
        principal=principal,
        project_id=project_id,
    )
    store.update_run(run_id, status="queued", job_id=accepted.job_id)
    return accepted


def submit_merge(
    *, project_id: UUID, principal: Principal, body: GitMergeInput, store: GitSyncStore
) -> JobAccepted:
    """Queue a ``git_merge`` job."""
    from common.jobs import submit_job

    linked_row(store, project_id, principal.key_id)
    return submit_job(
        kind="git_merge",
        input={"project_id": str(project_id), **body.model_dump(mode="json")},
        principal=principal,
        project_id=project_id,
    )


def git_status(
    *, project_id: UUID, owner_key_id: UUID, store: GitSyncStore, settings: Settings
) -> GitStatusOutput:
    """The link, the workspace's commit and the last runs."""
    row = store.find_link(project_id=project_id, owner_key_id=owner_key_id)
    if row is None:
        raise NotFound(f"no project {project_id}")
    repo = workspace_of(settings, project_id) / "repo"
    head = None
    if (repo / ".git").is_dir():
        try:
            head = _git(settings, repo, ["rev-parse", "HEAD"]).strip()
        except gitcmd.GitError:
            head = None  # an empty clone has no HEAD yet
    runs = [GitRunPublic.model_validate(r) for r in store.list_runs(project_id=project_id)]
    proposals = [
        GitProposalSummary(
            id=p["id"],
            branch=p["branch"],
            status=p["status"],
            ok=p["ok"],
            paths=[f["path"] for f in p["files"]],
            created_at=p["created_at"],
            decided_at=p["decided_at"],
        )
        for p in store.list_proposals(project_id=project_id)
    ]
    return GitStatusOutput(link=_link_public(row), head=head, runs=runs, proposals=proposals)


# -- the work (inside jobs) ---------------------------------------------------


class GitCheckout:
    """One project's workspace and how to reach its remote."""

    def __init__(
        self, *, row: dict[str, Any], settings: Settings, credentials: GitCredentialManager
    ) -> None:
        # Before anything else: a worker without git (Lambda without the GitLayer)
        # says so, rather than failing half-way through a clone.
        gitcmd.require_git()
        self.settings = settings
        self.folder = workspace_of(settings, row["id"])
        self.path = self.folder / "repo"
        self.branch = str(row["git_branch"] or "main")
        self.owner_key_id = row["owner_key_id"]
        self.project_id = row["id"]
        # Checked again at use: the name may resolve elsewhere now (DNS rebinding).
        self.remote = gitcmd.check_remote_url(
            str(row["git_remote"]), allow_private=settings.ALLOW_PRIVATE_GIT_HOSTS
        )
        self.token = (
            credentials.token_for(key_id=row["owner_key_id"], host=self.remote.host)
            if self.remote.scheme == "https"
            else None
        )

    def git(self, args: list[str], *, remote: bool = False) -> str:
        return gitcmd.run_git(
            args,
            cwd=self.path,
            token=self.token if remote else None,
            host=self.remote.host,
            askpass_dir=self.folder,
            timeout=self.settings.GIT_TIMEOUT,
            allow_http=self.settings.ALLOW_PRIVATE_GIT_HOSTS,
        )

    def update(self) -> bool:
        """Clone, or fetch and fast-forward; True when it cloned."""
        if (self.path / ".git" / "MERGE_HEAD").exists():
            # A merge job that died half-way (a timeout, a failed push) left it open.
            self.git(["merge", "--abort"])
        if not (self.path / ".git").is_dir():
            shutil.rmtree(self.path, ignore_errors=True)
            gitcmd.run_git(
                ["clone", "--quiet", "--branch", self.branch, "--", self.remote.url, "repo"],
                cwd=self.folder,
                token=self.token,
                host=self.remote.host,
                askpass_dir=self.folder,
                timeout=self.settings.GIT_TIMEOUT,
                allow_http=self.settings.ALLOW_PRIVATE_GIT_HOSTS,
            )
            return True
        self.git(["fetch", "--quiet", "origin"], remote=True)
        self.git(["merge", "--quiet", "--ff-only", f"origin/{self.branch}"])
        return False

    def push(self) -> None:
        self.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}"], remote=True)

    def head(self) -> str:
        return self.git(["rev-parse", "HEAD"]).strip()


def _git(settings: Settings, repo: Path, args: list[str]) -> str:
    return gitcmd.run_git(args, cwd=repo, askpass_dir=repo.parent, timeout=settings.GIT_TIMEOUT)


def sync_project(
    *,
    project_id: UUID,
    owner_key_id: UUID | None,
    run_id: UUID | None,
    push: bool,
    store: GitSyncStore,
    credentials: GitCredentialManager,
    settings: Settings,
) -> dict[str, Any]:
    """Clone or pull the project's remote, then push local commits; the run is recorded.

    Returns ``{"status": "skipped"}`` when another sync holds the project's lock.
    """
    with store.project_lock(project_id) as got:
        if not got:
            if run_id is not None:
                store.update_run(run_id, status="skipped", message="another sync was running")
            return {"status": "skipped"}
        if run_id is not None:
            store.update_run(run_id, status="running")
        try:
            repo = GitCheckout(
                row=linked_row(store, project_id, owner_key_id),
                settings=settings,
                credentials=credentials,
            )
            cloned = repo.update()
            if push:
                repo.push()
            head = repo.head()
            change = store_branch(repo, project_id=project_id, owner_key_id=row_owner(repo))
        except Exception as exc:
            if run_id is not None:
                message = getattr(exc, "message", type(exc).__name__)
                store.update_run(run_id, status="failed", message=str(message)[:2000])
            raise
        if run_id is not None:
            store.update_run(run_id, status="succeeded", message=f"at {head[:12]}")
        return {
            "status": "succeeded",
            "cloned": cloned,
            "pushed": push,
            "head": head,
            "files": None if change is None else change.model_dump(exclude={"unchanged"}),
        }


def row_owner(repo: GitCheckout) -> UUID:
    return UUID(str(repo.owner_key_id))


# git ls-files -s modes of what the stored tree keeps: regular files. Symlinks
# (120000) could point out of the tree; submodules (160000) are other repositories.
_REGULAR_MODES = {"100644", "100755"}


def store_branch(repo: GitCheckout, *, project_id: UUID, owner_key_id: UUID) -> TreeChange | None:
    """The branch's tracked files as the project's stored files, when the commit is not
    the one stored already; None when it is. Only paths git says changed since the
    stored commit are read again."""
    from common.storage.tree import Source, source_of, store_directory

    head = repo.head()
    stored, _ = source_of(project_id)
    if stored.kind == "git" and stored.revision == head:
        return None
    listing = repo.git(["ls-files", "-s", "-z"])
    names = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        if meta.split(" ", 1)[0] in _REGULAR_MODES:
            names.append(path)
    unchanged: set[str] | None = None
    if stored.kind == "git" and stored.revision:
        try:
            moved = repo.git(["diff", "--name-only", "-z", stored.revision, head])
        except gitcmd.GitError:
            moved = None  # the stored commit is gone (a force push): read everything
        if moved is not None:
            touched = {p for p in moved.split("\0") if p}
            unchanged = {n for n in names if n not in touched}
    return store_directory(
        project_id=project_id,
        owner_key_id=owner_key_id,
        root=repo.path,
        names=names,
        source=Source(kind="git", revision=head, ref=repo.branch),
        unchanged=unchanged,
    )


class FileProposal(BaseModel):
    path: str
    content: str | None
    checks: list[dict[str, Any]]
    ok: bool


class MergeProposal(BaseModel):
    id: UUID
    branch: str
    ours: str
    theirs: str
    files: list[FileProposal]
    tests: list[dict[str, Any]]
    ok: bool
    status: ProposalStatus = "proposed"


def merge_branch(
    *,
    project_id: UUID,
    owner_key_id: UUID | None,
    body: GitMergeInput,
    model: ModelClient,
    store: GitSyncStore,
    credentials: GitCredentialManager,
    settings: Settings,
    max_attempts: int = 3,
) -> dict[str, Any]:
    """Merge ``body.branch`` into the project's branch, or commit an accepted proposal.

    Returns
    -------
    dict
        ``{"status": "merged", "head", "message", "resolved"}``, or
        ``{"status": "conflicts", "conflicts", "proposal"}`` when nothing was committed.

    Raises
    ------
    Conflict
        Another sync holds the project, or an accepted proposal is stale or was
        already decided.
    NotFound
        No such project or proposal.
    """
    with store.project_lock(project_id) as got:
        if not got:
            raise Conflict("another git operation is running on this project; try again")
        row = linked_row(store, project_id, owner_key_id)
        if body.proposal_id is not None and not body.accept:
            return _reject(store, row, body.proposal_id, owner_key_id)
        repo = GitCheckout(row=row, settings=settings, credentials=credentials)
        repo.update()
        if body.accept:
            return _accept(
                repo,
                body,
                row=row,
                store=store,
                owner_key_id=owner_key_id,
                model=model,
                max_attempts=max_attempts,
            )
        assert body.branch is not None
        repo.git(["fetch", "--quiet", "origin", f"refs/heads/{body.branch}"], remote=True)
        theirs = repo.git(["rev-parse", "FETCH_HEAD"]).strip()
        ours = repo.head()
        result = gitcmd.merge(repo.path, ref=theirs, askpass_dir=repo.folder, commit=False)
        if result.merged:
            return _commit(repo, body, model=model, max_attempts=max_attempts, resolved=[])
        proposal = _propose(
            repo,
            branch=body.branch,
            ours=ours,
            theirs=theirs,
            conflicts=result.conflicts,
            model=model,
            max_attempts=max_attempts,
        )
        _save_proposal(store, row, repo, proposal, conflicts=result.conflicts)
        if body.auto and proposal.ok:
            _apply(repo, proposal)
            merged = _commit(
                repo,
                body,
                model=model,
                max_attempts=max_attempts,
                resolved=[f.path for f in proposal.files],
            )
            store.decide_proposal(proposal.id, status="accepted", merge_commit=merged["head"])
            return {**merged, "proposal_id": str(proposal.id)}
        repo.git(["merge", "--abort"])
        return {
            "status": "conflicts",
            "conflicts": result.conflicts,
            "proposal": proposal.model_dump(mode="json"),
        }


def _propose(
    repo: GitCheckout,
    *,
    branch: str,
    ours: str,
    theirs: str,
    conflicts: list[str],
    model: ModelClient,
    max_attempts: int,
) -> MergeProposal:
    from common.agents import prompts
    from common.agents.checked import ask_code
    from common.code.checks import CheckResult
    from common.code.languages import language_for_path

    def no_markers(code: str) -> list[CheckResult]:
        left = _MARKERS.search(code) is not None
        return [CheckResult("no_conflict_markers", not left, "conflict markers are left")]

    files = []
    for path in conflicts:
        language = language_for_path(path)
        marked = (repo.path / path).read_text(encoding="utf-8", errors="replace")
        messages = prompts.render(
            "git_merge",
            path=path,
            language=language or "",
            base=_stage(repo, 1, path),
            ours=_stage(repo, 2, path),
            theirs=_stage(repo, 3, path),
            marked=marked,
        )
        try:
            answer = ask_code(
                model,
                messages,
                task="git_merge",
                language=language,
                max_attempts=max_attempts,
                extra_checks=no_markers,
            ).value
        except ModelOutputInvalid as exc:
            checks = [{"name": "model", "ok": False, "message": exc.message}]
            files.append(FileProposal(path=path, content=None, checks=checks, ok=False))
            continue
        content = answer.code if answer.code.endswith("\n") else answer.code + "\n"
        files.append(FileProposal(path=path, content=content, checks=answer.checks, ok=True))
    tests = _run_tests(repo, {f.path: f.content for f in files if f.content is not None})
    ok = all(f.ok for f in files) and all(t["ok"] for t in tests)
    return MergeProposal(
        id=uuid4(), branch=branch, ours=ours, theirs=theirs, files=files, tests=tests, ok=ok
    )


def _stage(repo: GitCheckout, stage: int, path: str) -> str:
    try:
        return repo.git(["show", f":{stage}:{path}"])
    except gitcmd.GitError:
        return ""  # added on one side only: that stage does not exist


def _run_tests(repo: GitCheckout, proposed: dict[str, str]) -> list[dict[str, Any]]:
    """The project's tests on the merged tree, in the sandbox; [] when it has none."""
    from common.actions.inputs import is_test_path
    from common.actions.verify import test_checks
    from common.sandbox.sandbox import Limits

    listed = repo.git(["ls-files", "-z"]).split("\0")
    paths = sorted({p for p in listed if p} | set(proposed))
    if not any(is_test_path(p) for p in paths):
        return []
    files: dict[str, str] = {}
    for path in paths:
        if path in proposed:
            files[path] = proposed[path]
            continue
        file = repo.path / path
        if not file.is_file() or file.stat().st_size > _MAX_FILE_BYTES:
            continue
        try:
            files[path] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: the sandbox takes text files only
    results, _ = test_checks(files, limits=Limits())
    return [r.to_dict() for r in results]


def _apply(repo: GitCheckout, proposal: MergeProposal) -> None:
    for item in proposal.files:
        if item.content is None:
            raise InvalidInput(f"the proposal has no content for {item.path}")
        (repo.path / item.path).write_text(item.content, encoding="utf-8")
        repo.git(["add", "--", item.path])
    left = repo.git(["diff", "--name-only", "--diff-filter=U", "-z"]).split("\0")
    if any(left):
        raise Conflict("files are still conflicted: " + ", ".join(p for p in left if p))


def _commit(
    repo: GitCheckout,
    body: GitMergeInput,
    *,
    model: ModelClient,
    max_attempts: int,
    resolved: list[str],
) -> dict[str, Any]:
    message = body.message or _write_message(repo, body, model=model, max_attempts=max_attempts)
    # -m puts the message in argv: it is the model's or the caller's text, never a secret.
    repo.git(["commit", "--quiet", "--no-verify", "-m", message])
    repo.push()
    # The merged branch is the project's files now (and its index follows).
    store_branch(repo, project_id=UUID(str(repo.project_id)), owner_key_id=row_owner(repo))
    return {"status": "merged", "head": repo.head(), "message": message, "resolved": resolved}


def _write_message(
    repo: GitCheckout, body: GitMergeInput, *, model: ModelClient, max_attempts: int
) -> str:
    from common.agents import prompts
    from common.agents.checked import ask_text

    diff = repo.git(["diff", "--cached", "--stat", "--patch"])[:_MAX_DIFF_CHARS]
    context = f"Merge branch {body.branch!r} into {repo.branch!r}."
    text = ask_text(
        model,
        prompts.render("git_commit_message", context=context, diff=diff),
        task="git_commit_message",
        max_attempts=max_attempts,
    ).value
    return text.strip().strip("`").strip() or f"Merge branch '{body.branch}'"


def _save_proposal(
    store: GitSyncStore,
    row: dict[str, Any],
    repo: GitCheckout,
    proposal: MergeProposal,
    *,
    conflicts: list[str],
) -> None:
    store.insert_proposal(
        proposal_id=proposal.id,
        project_id=row["id"],
        owner_key_id=row["owner_key_id"],
        branch=proposal.branch,
        target_branch=repo.branch,
        ours=proposal.ours,
        theirs=proposal.theirs,
        conflicts=conflicts,
        files=[f.model_dump(mode="json") for f in proposal.files],
        tests=proposal.tests,
        ok=proposal.ok,
    )


def _load_proposal(
    store: GitSyncStore, row: dict[str, Any], proposal_id: UUID, owner_key_id: UUID | None
) -> dict[str, Any]:
    found = store.find_proposal(
        proposal_id=proposal_id, project_id=row["id"], owner_key_id=owner_key_id
    )
    if found is None:
        raise NotFound(f"no merge proposal {proposal_id}")
    if found["status"] != "proposed":
        raise Conflict(f"merge proposal {proposal_id} is already {found['status']}")
    return found


def _reject(
    store: GitSyncStore, row: dict[str, Any], proposal_id: UUID, owner_key_id: UUID | None
) -> dict[str, Any]:
    _load_proposal(store, row, proposal_id, owner_key_id)
    if not store.decide_proposal(proposal_id, status="rejected"):
        raise Conflict(f"merge proposal {proposal_id} was decided meanwhile")
    return {"status": "rejected", "proposal_id": str(proposal_id)}


def _accept(
    repo: GitCheckout,
    body: GitMergeInput,
    *,
    row: dict[str, Any],
    store: GitSyncStore,
    owner_key_id: UUID | None,
    model: ModelClient,
    max_attempts: int,
) -> dict[str, Any]:
    assert body.proposal_id is not None
    found = _load_proposal(store, row, body.proposal_id, owner_key_id)
    proposal = MergeProposal.model_validate(
        {k: found[k] for k in ("id", "branch", "ours", "theirs", "files", "tests", "ok")}
    )
    repo.git(["fetch", "--quiet", "origin", f"refs/heads/{proposal.branch}"], remote=True)
    theirs = repo.git(["rev-parse", "FETCH_HEAD"]).strip()
    moved = (
        found["target_branch"] != repo.branch
        or repo.head() != proposal.ours
        or theirs != proposal.theirs
    )
    if moved:
        # It can never apply again: say so, so that it is not offered any more.
        store.decide_proposal(proposal.id, status="stale")
        raise Conflict("the branches moved since this proposal; merge again for a new one")
    gitcmd.merge(repo.path, ref=theirs, askpass_dir=repo.folder, commit=False)
    _apply(repo, proposal)
    accepted = body.model_copy(update={"branch": proposal.branch})
    result = _commit(
        repo,
        accepted,
        model=model,
        max_attempts=max_attempts,
        resolved=[f.path for f in proposal.files],
    )
    store.decide_proposal(proposal.id, status="accepted", merge_commit=result["head"])
    return {**result, "proposal_id": str(proposal.id)}


# -- job runners --------------------------------------------------------------


def run_sync_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The ``git_sync`` job."""
    from common.config import get_settings
    from common.git.credentials import get_credential_manager
    from common.git.store import get_git_sync_store

    ctx.progress("sync", 0.0)
    result = sync_project(
        project_id=UUID(str(input["project_id"])),
        owner_key_id=ctx.key_id,
        run_id=UUID(str(input["run_id"])) if input.get("run_id") else None,
        push=bool(input.get("push", True)),
        store=get_git_sync_store(),
        credentials=get_credential_manager(),
        settings=get_settings(),
    )
    ctx.progress("done", 100.0)
    return result


def run_merge_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The ``git_merge`` job."""
    from common.config import get_settings
    from common.git.credentials import get_credential_manager
    from common.git.store import get_git_sync_store
    from common.models import get_model_client

    body = GitMergeInput.model_validate({k: v for k, v in input.items() if k != "project_id"})
    settings = get_settings()
    ctx.progress("merge", 0.0)
    result = merge_branch(
        project_id=UUID(str(input["project_id"])),
        owner_key_id=ctx.key_id,
        body=body,
        model=get_model_client(),
        store=get_git_sync_store(),
        credentials=get_credential_manager(),
        settings=settings,
        max_attempts=settings.MAX_ATTEMPTS,
    )
    ctx.progress("done", 100.0)
    return result
