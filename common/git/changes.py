"""Changes back to the repository: a verified result as a branch, a commit, a push and
a pull request; on a project without git, a new revision of its stored files.

``POST /api/projects/{id}/changes`` takes a finished action job (fix, optimize,
test) or a diff. What it will apply is settled when it is asked, so that a refusal
(an unverified result without ``force``, a job of another project) is an answer,
not a failed job: the job kind ``project_change`` then only applies it.

On git, the change goes on a new branch made in its own worktree from the commit the
stored files (and so the action) came from, and is pushed with the stored
credential through the askpass hand-off of :mod:`common.git.sync`; the project's
own checkout is not touched. The commit message is the caller's, or the model's
from the staged diff, checked like every model answer; a forced change says in it
that its checks did not pass.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.errors import Conflict, InvalidInput, NotFound
from common.git.service import Branch
from common.logs import get_logger
from common.paging import field_error

if TYPE_CHECKING:
    from common.auth import Principal
    from common.git.store import GitSyncStore
    from common.jobs import JobAccepted, JobContext
    from common.models.base import ModelClient

log = get_logger("git.changes")

# Within the request body limit (MAX_BODY_BYTES, 1 MB by default), which applies first.
MAX_DIFF_CHARS = 1_000_000
# Action job kinds whose result is a change to the project's files.
CHANGE_KINDS = ("fix", "optimize", "test")
SUBJECT_MAX = 72
_FORCED_NOTE = (
    "Applied unverified (force: true): its checks did not pass, or it was given as a"
    " bare diff, before this commit."
)
_MAX_MESSAGE_DIFF = 12_000


class Author(BaseModel):
    """Who the commit is by (the committer stays the server)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^<>\n\r\x00]+$")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^<>\s@]+@[^<>\s@]+$")


class ChangeTarget(BaseModel):
    """Where a change goes and how it is recorded."""

    model_config = ConfigDict(extra="forbid")

    branch: Branch | None = Field(None, description="The new branch; derived when absent.")
    base: Branch | None = Field(None, description="The branch it is for; the linked one.")
    message: str | None = Field(
        None, min_length=1, max_length=5000, description="Commit message; unset: the model's."
    )
    title: str | None = Field(None, min_length=1, max_length=200, description="PR title.")
    author: Author | None = None
    force: bool = Field(False, description="Apply a result whose checks did not pass.")
    open: Literal["pull_request"] | None = Field(
        None, description="Also open a pull request (GitHub, Bitbucket) or merge request."
    )


class ChangeInput(ChangeTarget):
    """A result to apply (``job_id`` or ``diff``) and where it goes."""

    job_id: UUID | None = Field(
        None, description="A finished fix, optimize or test job of this key, on this project."
    )
    diff: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_DIFF_CHARS,
        description="A unified diff as `git apply` takes it; unverified, so it needs `force`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ChangeInput:
        if (self.job_id is None) == (self.diff is None):
            raise ValueError("give exactly one of `job_id` or `diff`")
        return self


class PullRequestOut(BaseModel):
    kind: Literal["pull_request", "merge_request"]
    number: int
    url: str


class ChangeOutput(BaseModel):
    """What a change became."""

    project_id: UUID
    target: Literal["git", "stored"] = Field(
        description="`git`: a pushed branch; `stored`: a new revision of the stored files."
    )
    branch: str | None
    base: str | None
    commit: str | None
    revision: str = Field(description="The commit, or the stored files' new revision.")
    files: list[str] = Field(description="The files the change touched.")
    verified: bool
    forced: bool
    message: str
    pull_request: PullRequestOut | None = None
    conflicts: list[str] = Field(
        default_factory=list,
        description="Files that conflict with the base, which moved since the change's files.",
    )
    merge_job_id: UUID | None = Field(
        None, description="With conflicts: the git_merge job proposing their resolution."
    )


class Change(BaseModel):
    """The change settled at submission: the job carries it whole."""

    origin: str
    kind: str
    path: str | None = None
    diff: str | None = None
    files: dict[str, str] | None = None
    verified: bool
    verification: dict[str, Any] | None = None


# -- submission ---------------------------------------------------------------------


def submit_change(
    *, project_id: UUID, body: ChangeInput, principal: Principal, store: GitSyncStore
) -> JobAccepted:
    """Settle what ``body`` applies and queue the ``project_change`` job.

    Raises
    ------
    NotFound
        Not the caller's project, or ``job_id`` is not a job of this key.
    InvalidInput
        The job is not finished, not a change, or of another project; a pull request
        for a project without git.
    Conflict
        The result is not verified and ``force`` is not set.
    """
    from common.jobs import submit_job

    row = store.find_link(project_id=project_id, owner_key_id=principal.key_id)
    if row is None:
        raise NotFound(f"no project {project_id}")
    change = _settle(body, project_id=project_id, key_id=principal.key_id)
    if not change.verified and not body.force:
        raise Conflict(
            "the change is not verified (its checks did not pass, or it is a bare diff):"
            " send `force: true` to apply it anyway; the commit will say so",
            details={
                "fields": [field_error("body.force", "unverified", "the result is unverified")]
            },
        )
    if body.open and not row["git_remote"]:
        raise InvalidInput(
            "a pull request needs a git remote: this project's files were uploaded",
            details={
                "fields": [field_error("body.open", "no_remote", "the project has no remote")]
            },
        )
    if body.open:
        _host_of(row)  # an unknown host API is refused now, not after the push
    return submit_job(
        kind="project_change",
        input={
            "project_id": str(project_id),
            "change": change.model_dump(mode="json"),
            "body": ChangeTarget.model_validate(
                body.model_dump(exclude={"diff", "job_id"})
            ).model_dump(mode="json"),
        },
        principal=principal,
        project_id=project_id,
    )


def _settle(body: ChangeInput, *, project_id: UUID, key_id: UUID | None) -> Change:
    if body.diff is not None:
        return Change(origin="diff", kind="diff", diff=body.diff, verified=False)
    from common.jobs.store import get_job_store

    assert body.job_id is not None and key_id is not None
    job = get_job_store().find_job(body.job_id, key_id=key_id)
    if job is None:
        raise NotFound(f"no job {body.job_id}")
    problem = None
    if job["kind"] not in CHANGE_KINDS:
        problem = f"a {job['kind']} job holds no change to apply (fix, optimize or test do)"
    elif job["status"] != "succeeded":
        problem = f"the job is {job['status']}: only a finished job's result can be applied"
    elif job["project_id"] != project_id:
        problem = "the job worked on another project's files"
    if problem is not None:
        raise InvalidInput(
            problem, details={"fields": [field_error("body.job_id", "not_a_change", problem)]}
        )
    result: dict[str, Any] = job["result"] or {}
    verified = bool(result.get("verified"))
    origin = f"job:{job['id']}"
    verification = result.get("verification")
    if job["kind"] == "test":
        test_path, test_code = result.get("test_path"), result.get("test_code")
        if not test_path or not test_code:
            raise InvalidInput("the test job wrote no test file to apply")
        return Change(
            origin=origin,
            kind="test",
            path=str(test_path),
            files={str(test_path): str(test_code)},
            verified=verified,
            verification={"passed": result.get("passed"), "dropped": result.get("dropped")},
        )
    diff = result.get("diff") if verified else (result.get("candidate_diff") or result.get("diff"))
    if not diff:
        raise InvalidInput(
            "the job's result changes nothing",
            details={"fields": [field_error("body.job_id", "empty", "no diff in the result")]},
        )
    return Change(
        origin=origin,
        kind=str(job["kind"]),
        path=result.get("path"),
        diff=str(diff),
        verified=verified,
        verification=verification,
    )


# -- the job ------------------------------------------------------------------------


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``project_change``: apply the settled change; the :class:`ChangeOutput`."""
    from common.config import get_settings
    from common.git.store import get_git_sync_store
    from common.models import get_model_client

    project_id = UUID(str(input["project_id"]))
    change = Change.model_validate(input["change"])
    body = ChangeTarget.model_validate(input["body"])
    store = get_git_sync_store()
    row = store.find_link(project_id=project_id, owner_key_id=ctx.key_id)
    if row is None:
        raise NotFound(f"no project {project_id}")
    settings = get_settings()
    model = get_model_client()
    attempts = settings.MAX_ATTEMPTS
    if row["git_remote"]:
        with store.project_lock(project_id) as got:
            if not got:
                raise Conflict("another git operation is running on this project; try again")
            out = _to_git(row, change, body, ctx=ctx, model=model, max_attempts=attempts)
        if out.conflicts and out.base == row["git_branch"]:
            # The existing merge machinery proposes (and checks) a resolution; nothing
            # reaches the base until that proposal is accepted. Queued once the lock is
            # released, which the merge job takes in its turn.
            from common.jobs import submit_job
            from common.jobs.service import KeyRef

            assert ctx.key_id is not None
            queued = submit_job(
                kind="git_merge",
                input={"project_id": str(project_id), "branch": out.branch, "auto": False},
                principal=KeyRef(ctx.key_id),
                project_id=project_id,
            )
            out.merge_job_id = queued.job_id
    else:
        out = _to_stored(project_id, row, change, body, model=model, max_attempts=attempts)
    return out.model_dump(mode="json")


def derived_branch(change: Change, job_id: UUID) -> str:
    """``ao/<kind>-<path stem>-<8 hex>``: readable, and new for every change job."""
    stem = PurePosixPath(change.path).stem if change.path else "change"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()[:30] or "change"
    return f"ao/{change.kind}-{slug}-{job_id.hex[:8]}"


def _to_git(
    row: dict[str, Any],
    change: Change,
    body: ChangeTarget,
    *,
    ctx: JobContext,
    model: ModelClient,
    max_attempts: int,
) -> ChangeOutput:
    from common.config import get_settings
    from common.git import sync as gitcmd
    from common.git.credentials import get_credential_manager
    from common.git.service import GitCheckout

    settings = get_settings()
    repo = GitCheckout(row=row, settings=settings, credentials=get_credential_manager())
    ctx.progress("fetch", 10, "bringing the project's checkout up to date")
    repo.update()
    base = body.base or repo.branch
    start = _start_point(repo, row, base)
    branch = body.branch or derived_branch(change, ctx.job_id)
    tree = repo.folder / f"change-{ctx.job_id.hex[:12]}"

    def git(args: list[str], *, remote: bool = False) -> str:
        return gitcmd.run_git(
            args,
            cwd=tree,
            token=repo.token if remote else None,
            host=repo.remote.host,
            askpass_dir=repo.folder,
            timeout=settings.GIT_TIMEOUT,
            allow_http=settings.ALLOW_PRIVATE_GIT_HOSTS,
        )

    if repo.git(["branch", "--list", branch]).strip():
        raise Conflict(f"a branch {branch!r} already exists: name another")
    shutil.rmtree(tree, ignore_errors=True)
    repo.git(["worktree", "prune"])
    repo.git(["worktree", "add", "--quiet", "-b", branch, str(tree), start])
    try:
        ctx.progress("apply", 30, f"applying the change on {start[:12]}")
        touched = _apply_in(tree, change, git)
        message = _message(body, change, git(["diff", "--cached"]), model, max_attempts)
        author = body.author
        commit_args = ["commit", "--quiet", "--no-verify", "-m", message]
        if author is not None:
            commit_args.append(f"--author={author.name} <{author.email}>")
        git(commit_args)
        commit = git(["rev-parse", "HEAD"]).strip()
        conflicts = _conflicts_with(git, f"origin/{base}") if start != f"origin/{base}" else []
        ctx.progress("push", 60, f"pushing {branch}")
        try:
            git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], remote=True)
        except gitcmd.GitError as exc:
            if "rejected" in exc.message or "already exists" in exc.message:
                raise Conflict(f"the remote already has a branch {branch!r}") from exc
            raise
    finally:
        repo.git(["worktree", "remove", "--force", str(tree)])
        shutil.rmtree(tree, ignore_errors=True)
    pull_request = None
    if body.open:
        ctx.progress("open", 80, "opening the pull request")
        pull_request = _open_pull_request(
            row, repo.token, change, body, branch=branch, base=base, commit=commit
        )
    log.info(
        "change pushed",
        extra={"project_id": str(row["id"]), "branch": branch, "commit": commit},
    )
    return ChangeOutput(
        project_id=row["id"],
        target="git",
        branch=branch,
        base=base,
        commit=commit,
        revision=commit,
        files=touched,
        verified=change.verified,
        forced=not change.verified,
        message=message,
        pull_request=pull_request,
        conflicts=conflicts,
    )


def _conflicts_with(git: Any, tip: str) -> list[str]:
    """The files that conflict when ``tip`` is merged into the checked-out change (the
    trial is undone either way)."""
    from common.git.sync import GitError

    try:
        git(["merge", "--no-commit", "--no-ff", "--quiet", tip])
        conflicted: list[str] = []
    except GitError:
        listed = git(["diff", "--name-only", "--diff-filter=U", "-z"])
        conflicted = sorted(p for p in listed.split("\0") if p)
    try:
        git(["merge", "--abort"])
    except GitError:
        pass  # nothing to abort: the tip was already in the branch
    return conflicted


def _start_point(repo: Any, row: dict[str, Any], base: str) -> str:
    """The commit the stored files came from, when it is on ``base``: what the action
    saw. Otherwise (another base, or files not from git) the tip of ``base``."""
    from common.git.sync import GitError
    from common.storage.tree import source_of

    tip = f"origin/{base}"
    try:
        repo.git(["rev-parse", "--verify", "--quiet", f"{tip}^{{commit}}"])
    except GitError as exc:
        raise InvalidInput(f"the remote has no branch {base!r}") from exc
    source, _ = source_of(row["id"])
    if source.kind == "git" and source.revision:
        try:
            repo.git(["merge-base", "--is-ancestor", source.revision, tip])
            return str(source.revision)
        except GitError:
            pass
    return tip


def _apply_in(tree: Path, change: Change, git: Any) -> list[str]:
    """Stage the change in ``tree``; the paths it touched."""
    from common.git.sync import GitError

    if change.files is not None:
        for path, text in change.files.items():
            target = _inside(tree, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            git(["add", "--", path])
    else:
        patch = tree.parent / f"{tree.name}.patch"
        patch.write_text(change.diff or "", encoding="utf-8")
        try:
            git(["apply", "--index", "--whitespace=nowarn", str(patch)])
        except GitError as exc:
            raise Conflict(
                "the change does not apply to the branch's files: " + exc.message[-500:]
            ) from exc
        finally:
            patch.unlink(missing_ok=True)
    touched = [p for p in git(["diff", "--cached", "--name-only", "-z"]).split("\0") if p]
    if not touched:
        raise InvalidInput("the change makes no difference to the branch's files")
    return touched


def _inside(root: Path, path: str) -> Path:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts[0] == ".git":
        raise InvalidInput(f"the change names a path outside the repository: {path!r}")
    return root.joinpath(*pure.parts)


# -- the commit message -------------------------------------------------------------


def check_message(text: str) -> tuple[str | None, list[str]]:
    """A model's commit message, repaired where that is safe (a code fence, quotes,
    a ``Subject:`` label, blank lines at the ends), else the problems."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    while lines and lines[0].strip().startswith("```"):
        lines.pop(0)
    while lines and lines[-1].strip().startswith("```"):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None, ["the message is empty"]
    subject = re.sub(r"^(subject|commit message|title)\s*:\s*", "", lines[0].strip(), flags=re.I)
    subject = subject.strip().strip("\"'`").strip()
    problems = []
    if not subject:
        problems.append("the first line (the summary) is empty")
    if len(subject) > SUBJECT_MAX:
        problems.append(
            f"the summary line has {len(subject)} characters: at most {SUBJECT_MAX}, please"
        )
    if subject.startswith(("diff --git", "+++", "---", "@@")):
        problems.append("the answer is a diff, not a message")
    body = "\n".join(lines[1:]).strip("\n")
    if "```" in body:
        problems.append("the message holds code: describe the change in words")
    if problems:
        return None, problems
    return subject + (f"\n\n{body.strip()}" if body.strip() else ""), []


def _message(
    body: ChangeTarget, change: Change, staged: str, model: ModelClient, max_attempts: int
) -> str:
    from common.agents import prompts
    from common.agents.checked import ask_text

    if body.message is not None:
        message = body.message.strip()
    else:
        what = f"{change.kind} of {change.path}" if change.path else "a change"
        context = f"A {what}, {'verified by its checks' if change.verified else 'unverified'}."
        message = ask_text(
            model,
            prompts.render("git_commit_message", context=context, diff=staged[:_MAX_MESSAGE_DIFF]),
            task="git_commit_message",
            max_attempts=max_attempts,
            accept=check_message,
        ).value
    if not change.verified:
        message += f"\n\n{_FORCED_NOTE}"
    return message


# -- pull requests ------------------------------------------------------------------


def _host_of(row: dict[str, Any]) -> Any:
    from common.config import get_settings
    from common.git.hosts import host_repo

    return host_repo(
        str(row["git_remote"]),
        kind=row.get("git_host_kind"),
        api_url=row.get("git_api_url"),
        allow_private=get_settings().ALLOW_PRIVATE_GIT_HOSTS,
    )


def verification_table(change: Change) -> str:
    """The verification as Markdown: each check before and after, and how it ran."""
    v = change.verification or {}
    if change.kind == "test":
        passed = v.get("passed") or []
        lines = [f"{len(passed)} generated test(s) pass:"] + [f"- `{t}`" for t in passed[:50]]
        return "\n".join(lines)
    before = {c["name"]: c for c in v.get("before") or []}
    after = {c["name"]: c for c in v.get("after") or []}
    failing = {c["name"]: c for c in v.get("still_failing") or []}
    names = list(dict.fromkeys([*before, *after, *failing]))
    rows = ["| Check | Before | After |", "| --- | --- | --- |"]
    for name in names[:100]:
        was = "fails" if name in before else "passes"
        now = "fails" if name in failing else ("passes" if name in after else "-")
        rows.append(f"| `{name}` | {was} | {now} |")
    if len(names) > 100:
        rows.append(f"| ... and {len(names) - 100} more | | |")
    facts = [
        f"tests ran: {'yes' if v.get('tests_ran') else 'no'}",
        f"attempts: {v.get('attempts', '?')}",
    ]
    if v.get("isolation"):
        facts.append(f"sandbox: {v['isolation']}")
    if v.get("no_tests_reason"):
        facts.append(f"no tests: {v['no_tests_reason']}")
    table = "\n".join(rows) if names else "No check ran."
    return table + "\n\n" + " · ".join(facts)


def pull_request_body(change: Change, *, commit: str) -> str:
    state = (
        "**Verified**: every check below passed on this commit's files before it was made."
        if change.verified
        else "**Not verified**: applied with `force`; the checks did not pass."
    )
    what = f"{change.kind} of `{change.path}`" if change.path else "a change"
    return (
        f"{state}\n\nA {what} by AI Orchestrator ({change.origin}), commit `{commit[:12]}`."
        f"\n\n{verification_table(change)}\n"
    )


def _open_pull_request(
    row: dict[str, Any],
    token: str | None,
    change: Change,
    body: ChangeTarget,
    *,
    branch: str,
    base: str,
    commit: str,
) -> PullRequestOut:
    from common.git.hosts import HostClient

    if token is None:
        raise InvalidInput(
            f"no token stored for {row['git_remote']}: a pull request needs one"
            " (POST /api/git/credentials)"
        )
    what = f"{change.kind} {change.path}" if change.path else "change"
    title = body.title or f"AI Orchestrator: {what}"
    if not change.verified:
        title = f"[unverified] {title}"
    with HostClient(_host_of(row), token) as client:
        opened = client.open_pull_request(
            head=branch,
            base=base,
            title=title[:200],
            body=pull_request_body(change, commit=commit),
        )
    return PullRequestOut(kind=opened.kind, number=opened.number, url=opened.url)


# -- projects without git -----------------------------------------------------------


def _to_stored(
    project_id: UUID,
    row: dict[str, Any],
    change: Change,
    body: ChangeTarget,
    *,
    model: ModelClient,
    max_attempts: int,
) -> ChangeOutput:
    """The change as a new revision of the stored files; the old one stays downloadable."""
    from common.storage.tree import apply_change, local_tree

    tree = local_tree(project_id)
    if change.files is not None:
        files, deleted = dict(change.files), list[str]()
        for path in files:
            _inside(tree, path)
    else:
        files, deleted = patch_files(tree, change.diff or "")
    unchanged = [p for p, text in files.items() if _read(tree, p) == text]
    if len(unchanged) == len(files) and not deleted:
        raise InvalidInput("the change makes no difference to the stored files")
    shown = change.diff or _as_diff(tree, files)
    message = _message(body, change, shown, model, max_attempts)
    moved = apply_change(
        project_id=project_id, owner_key_id=row["owner_key_id"], files=files, deleted=deleted
    )
    log.info("change stored", extra={"project_id": str(project_id), "revision": moved.revision})
    return ChangeOutput(
        project_id=project_id,
        target="stored",
        branch=None,
        base=None,
        commit=None,
        revision=moved.revision,
        files=sorted({*moved.added, *moved.changed, *moved.removed}),
        verified=change.verified,
        forced=not change.verified,
        message=message,
    )


_DIFF_PATH = re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(?P<path>[^\t\n]+)")


def patch_files(tree: Path, diff: str) -> tuple[dict[str, str], list[str]]:
    """Apply ``diff`` to copies of the files it names: their new texts, and the files
    it deletes. git applies it (outside any repository, as ``patch`` would)."""
    import tempfile

    from common.git import sync as gitcmd

    named = sorted(
        {
            m["path"].strip()
            for line in diff.splitlines()
            if (m := _DIFF_PATH.match(line)) and m["path"].strip() != "/dev/null"
        }
    )
    if not named:
        raise InvalidInput(
            "the diff names no file: a unified diff with ---/+++ lines is expected",
            details={"fields": [field_error("body.diff", "not_a_diff", "no ---/+++ lines")]},
        )
    with tempfile.TemporaryDirectory(prefix="ao-change-") as scratch:
        work = Path(scratch) / "tree"
        work.mkdir()
        before = set()
        for path in named:
            source, copy = _inside(tree, path), _inside(work, path)
            if source.is_file():
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(source.read_bytes())
                before.add(path)
        patch = Path(scratch) / "change.patch"
        patch.write_text(diff if diff.endswith("\n") else diff + "\n", encoding="utf-8")
        try:
            gitcmd.run_git(
                ["apply", "--whitespace=nowarn", str(patch)], cwd=work, askpass_dir=Path(scratch)
            )
        except gitcmd.GitError as exc:
            raise Conflict(
                "the change does not apply to the stored files: " + exc.message[-500:]
            ) from exc
        files: dict[str, str] = {}
        deleted: list[str] = []
        for path in named:
            copy = work / path
            if copy.is_file():
                try:
                    files[path] = copy.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInput(f"the change makes {path!r} a binary file") from exc
            elif path in before:
                deleted.append(path)
    return files, deleted


def _read(tree: Path, path: str) -> str | None:
    target = _inside(tree, path)
    try:
        return target.read_text(encoding="utf-8") if target.is_file() else None
    except UnicodeDecodeError:
        return None


def _as_diff(tree: Path, files: dict[str, str]) -> str:
    import difflib

    out: list[str] = []
    for path, text in sorted(files.items()):
        old = _read(tree, path) or ""
        out += difflib.unified_diff(
            old.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    return "".join(out)
