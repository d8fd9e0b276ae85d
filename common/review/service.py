"""Review of a change: only what it changed is judged, as a reviewer on a pull request.

The change's files are taken as they are after it (``head``), scanned and measured
whole (a tool needs the whole file to parse it), and only the findings on lines the
change added are kept: a pull request is not blamed for what it did not touch.
Each finding may get a suggested replacement of its line from the model, accepted
only when the file still parses with it (and, for a security finding, when a
re-scan of the file no longer reports that rule there). The verdict fails when a
finding reaches ``fail_on``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.actions.inputs import ActionOptions
from common.errors import InvalidInput, ModelOutputInvalid, NotFound
from common.logs import get_logger
from common.memory.models import FileContent, ProjectPath
from common.models.base import Usage
from common.paging import field_error

if TYPE_CHECKING:
    from common.models.base import ModelClient

log = get_logger("review")

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
Check = Literal["security", "analyze"]
ALL_CHECKS: tuple[Check, ...] = ("security", "analyze")
MAX_DIFF_CHARS = 1_000_000
MAX_COMMENTS = 30
# Findings the model is asked to suggest a change for, most severe first.
MAX_SUGGESTIONS = 10
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")


class ReviewInput(BaseModel):
    """A change to review: a ``diff`` with the changed files' new ``files`` (or a
    ``project_id`` whose stored files it applies to), or a linked project's
    ``base`` and ``head``."""

    model_config = ConfigDict(extra="forbid")

    diff: str | None = Field(None, min_length=1, max_length=MAX_DIFF_CHARS)
    files: dict[ProjectPath, FileContent] | None = Field(
        None, description="With `diff`: the changed files as they are after it."
    )
    project_id: UUID | None = Field(None, description="A project of this key.")
    base: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[\w./@^~-]+$")
    head: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[\w./@^~-]+$")
    checks: list[Check] | None = Field(None, description="Default: the project's, or both.")
    fail_on: Severity | None = Field(None, description="Default: the project's, or high.")
    suggest: bool = Field(True, description="Ask the model for a summary and suggestions.")
    options: ActionOptions = Field(default_factory=ActionOptions)

    @model_validator(mode="after")
    def _one_form(self) -> ReviewInput:
        refs = self.base is not None or self.head is not None
        if refs and (self.base is None or self.head is None or self.project_id is None):
            raise ValueError("`base` and `head` go together, with `project_id`")
        if refs and self.diff is not None:
            raise ValueError("give a `diff` or `base` and `head`, not both")
        if not refs and self.diff is None:
            raise ValueError("give a `diff` (with `files` or `project_id`), or `base` and `head`")
        if self.diff is not None and self.files is None and self.project_id is None:
            raise ValueError("a `diff` needs the changed files: `files` or `project_id`")
        return self


class ReviewComment(BaseModel):
    path: str
    line: int
    severity: Severity
    tool: str
    rule: str
    message: str
    suggestion: str | None = Field(
        None, description="The line replaced by this, checked: the file still parses."
    )


class ReviewOutput(BaseModel):
    verdict: Literal["pass", "fail"]
    fail_on: Severity
    summary: str
    comments: list[ReviewComment]
    comments_total: int
    files: list[str] = Field(description="The files the change touched.")
    checks: list[Check]
    counts: dict[str, int] = Field(description="Findings on changed lines by severity.")
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    model_error: str | None = None
    sarif: dict[str, Any] | None = Field(
        None, description="SARIF 2.1.0 of the security scan's findings on changed lines."
    )
    duration_ms: int


@dataclass(frozen=True)
class Change:
    """A change as the review needs it: the files after it, and the lines it added."""

    files: dict[str, str]
    added: dict[str, set[int]]
    diff: str


# -- the diff ---------------------------------------------------------------------------


def added_lines(diff: str) -> dict[str, set[int]]:
    """Path (after the change) -> the line numbers the diff adds there."""
    added: dict[str, set[int]] = {}
    path: str | None = None
    line = 0
    for text in diff.splitlines():
        if text.startswith("+++ "):
            name = text[4:].split("\t", 1)[0].strip()
            path = None if name == "/dev/null" else re.sub(r"^b/", "", name)
            if path is not None:
                added.setdefault(path, set())
            continue
        if text.startswith("--- ") or text.startswith("diff --git"):
            continue
        hunk = _HUNK.match(text)
        if hunk is not None:
            line = int(hunk["start"])
            continue
        if path is None or line == 0:
            continue
        if text.startswith("+"):
            added[path].add(line)
            line += 1
        elif text.startswith(" ") or text == "":
            line += 1
        # "-" lines are the old side's; "\ No newline" is neither.
    return added


# -- the review -------------------------------------------------------------------------


def review_change(
    change: Change,
    *,
    checks: list[Check],
    fail_on: Severity,
    model: ModelClient | None,
    max_attempts: int,
    timeout_s: float = 60,
) -> ReviewOutput:
    """Findings on the change's added lines, suggestions, a summary and the verdict."""
    started = time.monotonic()
    found, sarif = _findings(change, checks, timeout_s)
    comments = [c for c in found if c.line in change.added.get(c.path, ())]
    comments.sort(key=lambda c: (SEVERITIES.index(c.severity), c.path, c.line, c.rule))
    comments = _dedupe(comments)
    counts = {s: sum(1 for c in comments if c.severity == s) for s in SEVERITIES}
    failing = [c for c in comments if SEVERITIES.index(c.severity) <= SEVERITIES.index(fail_on)]
    verdict: Literal["pass", "fail"] = "fail" if failing else "pass"
    summary = _plain_summary(comments, verdict, fail_on, len(change.added))
    model_name, usage, model_error = None, Usage(), None
    if model is not None and comments:
        try:
            suggested = _suggest(change, comments, model=model, max_attempts=max_attempts)
        except ModelOutputInvalid as exc:
            model_error = exc.message
        else:
            summary = f"{suggested.value.summary.strip()}\n\n{summary}"
            usage, model_name = suggested.usage, suggested.model
            for item in suggested.value.suggestions:
                target = comments[item.id]
                line = change.files[target.path].splitlines()[target.line - 1]
                target.suggestion = indented(line, item.change)
    return ReviewOutput(
        verdict=verdict,
        fail_on=fail_on,
        summary=summary,
        comments=comments[:MAX_COMMENTS],
        comments_total=len(comments),
        files=sorted(change.added),
        checks=checks,
        counts=counts,
        model=model_name,
        usage=usage,
        model_error=model_error,
        sarif=sarif,
        duration_ms=round((time.monotonic() - started) * 1000),
    )


def _findings(
    change: Change, checks: list[Check], timeout_s: float
) -> tuple[list[ReviewComment], dict[str, Any] | None]:
    """The tools' findings on the changed files, and the scan's SARIF log of those on
    changed lines (None when the security check did not run)."""
    files = {p: t for p, t in change.files.items() if p in change.added}
    found: list[ReviewComment] = []
    sarif = None
    if "security" in checks and files:
        from common.security.sarif import build_sarif
        from common.security.scan import scan_files

        scanned = scan_files(files)
        on_changed = [
            f for f in scanned.findings if f.line is not None and f.line in change.added[f.path]
        ]
        sarif = build_sarif(
            [(f"R{i + 1}", f) for i, f in enumerate(on_changed)],
            scanned.runs,
            versions=scanned.versions,
        )
        for f in scanned.findings:
            if f.line is not None:
                found.append(
                    ReviewComment(
                        path=f.path,
                        line=f.line,
                        severity=f.severity,
                        tool=f.tool,
                        rule=f.rule,
                        message=f.title or f.message,
                    )
                )
    if "analyze" in checks and files:
        from common.actions.analyze import measure_workspace
        from common.actions.inputs import Workspace

        workspace = Workspace(files=files, primary=sorted(files)[0], language=None)
        for a in measure_workspace(workspace, timeout_s=timeout_s).findings:
            if a.path is not None and a.line is not None and a.source != "bandit":
                found.append(
                    ReviewComment(
                        path=a.path,
                        line=a.line,
                        severity=a.severity,
                        tool=a.source,
                        rule=a.rule or a.source,
                        message=f"{a.title}. {a.recommendation}".strip(),
                    )
                )
    return found, sarif


def _dedupe(comments: list[ReviewComment]) -> list[ReviewComment]:
    # The scan and the analysis both run bandit-like checks: one comment a rule and line.
    seen: set[tuple[str, int, str]] = set()
    kept = []
    for c in comments:
        key = (c.path, c.line, c.rule)
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def _plain_summary(
    comments: list[ReviewComment], verdict: str, fail_on: Severity, files: int
) -> str:
    if not comments:
        return f"No finding on the {files} changed file(s)' new lines."
    counts = ", ".join(
        f"{n} {s}" for s in SEVERITIES if (n := sum(1 for c in comments if c.severity == s))
    )
    why = f"findings at {fail_on} or above" if verdict == "fail" else f"nothing at {fail_on}"
    return f"{len(comments)} finding(s) on changed lines ({counts}): {verdict}, {why}."


# -- suggestions ------------------------------------------------------------------------


class Suggestion(BaseModel):
    id: int = Field(description="The finding's number.")
    change: str = Field(min_length=1, max_length=2000, description="The line's replacement.")


class Suggestions(BaseModel):
    summary: str = Field(min_length=1, max_length=2000)
    suggestions: list[Suggestion] = Field(default_factory=list, max_length=MAX_SUGGESTIONS)


def _suggest(
    change: Change, comments: list[ReviewComment], *, model: ModelClient, max_attempts: int
) -> Any:
    from common.agents import prompts
    from common.agents.checked import ask_json

    numbered = comments[:MAX_SUGGESTIONS]
    listing = "\n".join(
        f"{i}. {c.path}:{c.line} [{c.severity}] {c.rule}: {c.message}\n"
        f"   line: {_line(change.files[c.path], c.line)}"
        for i, c in enumerate(numbered)
    )

    def accept(value: Suggestions) -> list[str]:
        problems = []
        for item in value.suggestions:
            if not 0 <= item.id < len(numbered):
                problems.append(f"suggestion id {item.id} is not a finding's number")
                continue
            problem = check_suggestion(change.files, numbered[item.id], item.change)
            if problem:
                problems.append(f"suggestion {item.id}: {problem}")
        return problems

    return ask_json(
        model,
        prompts.render("review", findings=listing, diff=change.diff[:12_000]),
        Suggestions,
        task="review",
        max_attempts=max_attempts,
        accept=accept,
    )


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def indented(old_line: str, replacement: str) -> str:
    """``replacement`` at ``old_line``'s indentation when the model left it out (a
    pull request's suggestion replaces the whole line, indentation included)."""
    body = replacement.strip("\n")
    if body.startswith((" ", "\t")):
        return body
    indent = old_line[: len(old_line) - len(old_line.lstrip())]
    return "\n".join(indent + part if part else part for part in body.split("\n"))


def check_suggestion(files: dict[str, str], comment: ReviewComment, replacement: str) -> str:
    """Why ``replacement`` for the finding's line is refused ("" when it is accepted):
    the file must still parse, and a security finding must be gone on a re-scan."""
    from common.code.checks import check_code
    from common.code.languages import language_for_path

    text = files[comment.path]
    lines = text.splitlines(keepends=True)
    if not 0 < comment.line <= len(lines):
        return "the finding's line is not in the file"
    if replacement.strip().startswith("```"):
        return "give the replacement line itself, without a code fence"
    body = indented(lines[comment.line - 1], replacement)
    patched = "".join(lines[: comment.line - 1]) + body + "\n" + "".join(lines[comment.line :])
    language = language_for_path(comment.path)
    broken = [r for r in check_code(patched, language) if r.name == "parse" and not r.ok]
    if broken:
        return f"the file no longer parses with it: {broken[0].message}"
    if comment.tool in ("bandit", "semgrep", "secrets"):
        from common.security.scan import scan_files

        again = scan_files({comment.path: patched}, semgrep=comment.tool == "semgrep")
        near = range(comment.line - 1, comment.line + body.count("\n") + 2)
        if any(f.rule == comment.rule and (f.line or 0) in near for f in again.findings):
            return f"a re-scan still reports {comment.rule} there"
    return ""


# -- the request ------------------------------------------------------------------------


def review_request(
    request: ReviewInput, *, owner_key_id: UUID | None, model: ModelClient, max_attempts: int
) -> ReviewOutput:
    """/api/review: the change from the request, reviewed with the project's settings.

    Raises
    ------
    NotFound
        ``project_id`` is not a project of this key.
    InvalidInput
        The diff names no file, does not apply, or the refs are unknown.
    """
    settings = review_settings(request.project_id) if request.project_id else None
    checks = request.checks or (settings.checks if settings else list(ALL_CHECKS))
    fail_on = request.fail_on or (settings.fail_on if settings else "high")
    change = change_of(request, owner_key_id=owner_key_id)
    return review_change(
        change,
        checks=list(dict.fromkeys(checks)),
        fail_on=fail_on,
        model=model if request.suggest else None,
        max_attempts=request.options.max_attempts or max_attempts,
        timeout_s=request.options.timeout_s,
    )


def change_of(request: ReviewInput, *, owner_key_id: UUID | None) -> Change:
    """The reviewed change: from the diff and files, the diff on the stored files, or
    the linked repository's refs."""
    if request.diff is not None:
        added = added_lines(request.diff)
        if not added:
            raise InvalidInput(
                "the diff names no changed file: a unified diff with +++ lines is expected",
                details={"fields": [field_error("body.diff", "not_a_diff", "no +++ lines")]},
            )
        if request.files is not None:
            missing = sorted(p for p in added if p not in request.files)
            if missing:
                raise InvalidInput(
                    f"`files` lacks changed files: {missing[:5]}",
                    details={
                        "fields": [field_error("body.files", "missing", ", ".join(missing[:5]))]
                    },
                )
            return Change({p: request.files[p] for p in added}, added, request.diff)
        return _on_stored(request, added, owner_key_id)
    return _on_refs(request, owner_key_id)


def _on_stored(request: ReviewInput, added: dict[str, set[int]], key: UUID | None) -> Change:
    from common.git.changes import patch_files
    from common.projects import get_project
    from common.storage.tree import local_tree
    from common.stores.projects_store import get_project_store

    assert request.project_id is not None and request.diff is not None
    if key is None:
        raise NotFound(f"no project {request.project_id}")
    get_project(project_id=request.project_id, owner_key_id=key, store=get_project_store())
    files, _ = patch_files(local_tree(request.project_id), request.diff)
    return Change({p: files[p] for p in added if p in files}, added, request.diff)


def _on_refs(request: ReviewInput, key: UUID | None) -> Change:
    from common.config import get_settings
    from common.git.credentials import get_credential_manager
    from common.git.service import GitCheckout, linked_row
    from common.git.store import get_git_sync_store
    from common.git.sync import GitError

    assert request.project_id is not None and request.base and request.head
    row = linked_row(get_git_sync_store(), request.project_id, key)
    repo = GitCheckout(row=row, settings=get_settings(), credentials=get_credential_manager())
    repo.update()
    return diff_between(repo, request.base, request.head, fetch=(request.head,), error=GitError)


def diff_between(repo: Any, base: str, head: str, *, fetch: tuple[str, ...], error: Any) -> Change:
    """The change from ``base`` to ``head`` in a project's checkout (``head`` and any
    ``fetch`` refs fetched first); the files as they are at ``head``."""
    for ref in fetch:
        try:
            repo.git(["fetch", "--quiet", "origin", ref], remote=True)
        except error:
            pass  # a ref already here (a branch fetched with origin) needs no fetch
    resolved = []
    for ref in (base, head):
        for candidate in (ref, f"origin/{ref}", "FETCH_HEAD" if ref == head else ref):
            try:
                resolved.append(
                    repo.git(["rev-parse", "--verify", f"{candidate}^{{commit}}"]).strip()
                )
                break
            except error:
                continue
        else:
            raise InvalidInput(f"the repository has no commit or branch {ref!r}")
    merge_base = repo.git(["merge-base", resolved[0], resolved[1]]).strip()
    diff = repo.git(["diff", "--no-color", "--no-ext-diff", merge_base, resolved[1]])
    added = added_lines(diff)
    files: dict[str, str] = {}
    for path in added:
        try:
            files[path] = repo.git(["show", f"{resolved[1]}:{path}"])
        except error:
            continue
    return Change(files, added, diff)


# -- per-project settings -----------------------------------------------------------------


class ReviewSettings(BaseModel):
    """What a pull request of the project is reviewed with."""

    model_config = ConfigDict(extra="forbid")

    checks: list[Check] = Field(
        default_factory=lambda: list(ALL_CHECKS), min_length=1, max_length=2
    )
    fail_on: Severity = Field("high", description="The severity that fails the status.")


def review_settings(project_id: UUID) -> ReviewSettings:
    from common.stores.mongo import get_mongo

    meta = get_mongo()["project_meta"].find_one({"project_id": str(project_id)}) or {}
    stored = meta.get("review_settings")
    return ReviewSettings.model_validate(stored) if stored else ReviewSettings()


def save_review_settings(
    project_id: UUID, owner_key_id: UUID | None, settings: ReviewSettings
) -> ReviewSettings:
    """Keep ``settings`` for the project (checked to be the key's).

    Raises
    ------
    NotFound
        Not the key's project.
    """
    from common.projects import get_project
    from common.stores.mongo import get_mongo
    from common.stores.projects_store import get_project_store

    if owner_key_id is None:
        raise NotFound(f"no project {project_id}")
    get_project(project_id=project_id, owner_key_id=owner_key_id, store=get_project_store())
    get_mongo()["project_meta"].update_one(
        {"project_id": str(project_id)},
        {"$set": {"review_settings": settings.model_dump(mode="json")}},
        upsert=True,
    )
    return settings


def run_job(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Job kind ``review``: :func:`review_request` for the job's key."""
    from common.config import get_settings
    from common.models import get_model_client

    request = ReviewInput.model_validate(input)
    return review_request(
        request,
        owner_key_id=ctx.key_id,
        model=get_model_client(),
        max_attempts=get_settings().MAX_ATTEMPTS,
    ).model_dump(mode="json")
