"""/api/fix: run the checks, ask for a fix, apply it, run them again.

One rule for a model that never gets it right (the same for every action): the
answer is HTTP 200 with ``verified: false``; ``files`` and ``diff`` then hold
nothing (unverified code is never presented as the fix), the model's last
candidate is in ``candidate_diff``, and ``verification.still_failing`` and
``attempts`` say why.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from uuid import UUID

from pydantic import BaseModel, Field

from common.actions.base import (
    AttemptInfo,
    Progress,
    action_context,
    attempts_of,
    attempts_of_failure,
    job_runner,
    limits_for,
    record_action,
    report,
)
from common.actions.inputs import CodeInput, load_workspace
from common.actions.verify import (
    CheckRun,
    Verification,
    run_checks,
    test_checks,
    unverified,
    verification,
)
from common.agents import universal
from common.code.checks import CheckResult
from common.code.diff import unified_diff
from common.errors import ModelOutputInvalid
from common.memory.models import MAX_FILE_CHARS
from common.models.base import ModelClient, Usage


class FixInput(CodeInput):
    error: str | None = Field(
        None, max_length=20_000, description="The error message or traceback you saw."
    )
    test: str | None = Field(
        None,
        max_length=MAX_FILE_CHARS,
        description="A failing test (a whole test file) that the fix must make pass.",
    )


class FixOutput(BaseModel):
    verified: bool
    path: str = Field(description="The file that was fixed.")
    language: str | None
    files: dict[str, str] = Field(description="The fixed files (only when verified).")
    diff: str = Field(description="A unified diff of the fix that `git apply` accepts.")
    verification: Verification
    attempts: list[AttemptInfo]
    candidate_diff: str = Field("", description="The last unverified candidate, when not verified.")
    model: str
    usage: Usage
    duration_ms: int


def fix_request(
    request: FixInput,
    *,
    owner_key_id: UUID | None,
    model: ModelClient,
    max_attempts: int,
    on_progress: Progress | None = None,
) -> FixOutput:
    """Fix ``request``'s primary file until its checks and tests pass (or attempts run out).

    Raises
    ------
    NotFound, InvalidInput
        From loading the workspace.
    """
    import time

    started = time.monotonic()
    ws = load_workspace(request, owner_key_id=owner_key_id)
    files = dict(ws.files)
    if request.test:
        files[_test_name(ws.primary, files)] = request.test
    limits = limits_for(ws.options)
    report(on_progress, "checking", 5, "running the checks before the fix")
    before = run_checks(
        files, run_tests=ws.options.run_tests, limits=limits, repository=ws.repository
    )
    problem = "\n\n".join(p for p in (request.error or "", before.problems()) if p)
    runs: dict[str, CheckRun] = {}

    def behaviour(code: str) -> list[CheckResult]:
        # Parse and lint of the answer ran already (ask_code); here: the tests, with it in place.
        candidate = {**files, ws.primary: code}
        if not ws.options.run_tests:
            runs[code] = CheckRun([])
            return []
        report(on_progress, "testing", 50, "running the tests against a candidate")
        results, reports = test_checks(candidate, limits=limits, repository=ws.repository)
        runs[code] = CheckRun(results, reports)
        return results

    report(on_progress, "asking", 20, "asking the model for a fix")
    try:
        checked = universal.fix(
            files[ws.primary],
            model=model,
            language=ws.language,
            problem=problem,
            instructions=request.instructions,
            context=action_context(
                files, ws.primary, project_id=request.project_id, owner_key_id=owner_key_id
            ),
            extra_checks=behaviour,
            max_attempts=max_attempts,
        )
    except ModelOutputInvalid as exc:
        failed, last_code = unverified(before, runs, exc)
        output = FixOutput(
            verified=False,
            path=ws.primary,
            language=ws.language,
            files={},
            diff="",
            verification=failed,
            attempts=attempts_of_failure(exc),
            candidate_diff=(
                unified_diff({ws.primary: ws.files[ws.primary]}, {ws.primary: last_code})
                if last_code is not None
                else ""
            ),
            model=str(exc.details.get("model", model.model)),
            usage=Usage(),
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        _record(request, output)
        return output
    fixed = checked.value.code
    final = {**files, ws.primary: fixed}
    report(on_progress, "verifying", 90, "running every check on the fixed files")
    after = run_checks(
        final, run_tests=ws.options.run_tests, limits=limits, repository=ws.repository
    )
    before_files = {ws.primary: ws.files[ws.primary]}
    output = FixOutput(
        verified=after.ok,
        path=ws.primary,
        language=ws.language,
        files={ws.primary: fixed} if after.ok else {},
        diff=unified_diff(before_files, {ws.primary: fixed}) if after.ok else "",
        verification=verification(before, after, attempts=len(checked.attempts)),
        attempts=attempts_of(checked),
        candidate_diff="" if after.ok else unified_diff(before_files, {ws.primary: fixed}),
        model=checked.model,
        usage=checked.usage,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    _record(request, output)
    return output


def _test_name(primary: str, files: dict[str, str]) -> str:
    pure = PurePosixPath(primary)
    if pure.suffix == ".py":
        name = str(pure.with_name(f"test_{pure.stem}.py"))
    else:
        name = str(pure.with_name(f"{pure.stem}.test{pure.suffix}"))
    while name in files:
        name = name.replace("test", "test_given", 1)
    return name


def _record(request: FixInput, output: FixOutput) -> None:
    record_action(
        "fix",
        request,
        {
            "verified": output.verified,
            "path": output.path,
            "attempts": len(output.attempts),
            "before": [c.name for c in output.verification.before],
            "still_failing": [c.name for c in output.verification.still_failing],
        },
    )


# The job kind's runner (common/jobs/kinds.py).
run_job = job_runner(FixInput, fix_request)
