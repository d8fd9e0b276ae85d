"""/api/test: unit tests that run green against the given code, with their coverage.

1. Ask for a test file (pytest for Python, node:test for JavaScript) that at least
   loads and holds tests: an answer that does not is sent back with the error.
2. Run it against the code in the sandbox. Tests that fail go back to the model
   once with their failures (a test of behaviour the code does not have is wrong).
3. Tests still failing are dropped, each listed with the reason.
4. Run what is left with coverage (Python: coverage.py).

``verified`` is true when at least one generated test passes and none fails.
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, Field

from common.actions.base import (
    AttemptInfo,
    Progress,
    attempts_of,
    attempts_of_failure,
    context_files,
    job_runner,
    limits_for,
    record_action,
    report,
)
from common.actions.inputs import CodeInput, Workspace, is_test_path, load_workspace
from common.agents import prompts, universal
from common.agents.checked import ask_code
from common.code.checks import CheckResult
from common.code.prune import drop_js_tests, drop_python_tests
from common.errors import InvalidInput, ModelOutputInvalid
from common.models.base import ModelClient, Usage

if TYPE_CHECKING:
    from common.sandbox import Limits, TestReport

SUPPORTED = ("python", "javascript")


class GenerateTestsInput(CodeInput):
    pass


class DroppedTest(BaseModel):
    name: str
    reason: str


class GenerateTestsOutput(BaseModel):
    verified: bool
    path: str = Field(description="The code under test.")
    test_path: str
    test_code: str = Field(description="The generated tests: every one passes.")
    language: str | None
    framework: str
    passed: list[str]
    dropped: list[DroppedTest] = Field(description="Generated tests that failed, and why.")
    coverage: dict[str, float] | None = None
    coverage_total: float | None = None
    missing_lines: dict[str, list[int]] | None = None
    isolation: str | None = None
    attempts: list[AttemptInfo]
    model: str
    usage: Usage
    duration_ms: int


def generate_tests(
    request: GenerateTestsInput,
    *,
    owner_key_id: UUID | None,
    model: ModelClient,
    max_attempts: int,
    on_progress: Progress | None = None,
) -> GenerateTestsOutput:
    """Tests for ``request``'s primary file that pass against it.

    Raises
    ------
    InvalidInput
        A language without a test runner here (Python and JavaScript have one).
    """
    started = time.monotonic()
    ws = load_workspace(request, owner_key_id=owner_key_id)
    if ws.language not in SUPPORTED:
        raise InvalidInput(
            f"tests can be generated and run for {' and '.join(SUPPORTED)};"
            f" this code is {ws.language or 'of an unknown language'}",
            details={"fields": [{"path": "body.language", "type": "unsupported", "message": ""}]},
        )
    limits = limits_for(ws.options)
    test_path, module = _test_file_for(ws)
    base = _runnable(ws)
    run = _Runner(base, test_path, ws.language or "", limits)

    report(on_progress, "writing", 10, "asking the model for tests")
    others = [p for p in sorted(ws.files) if p != ws.primary and not is_test_path(p)]
    try:
        checked = universal.write_tests(
            ws.files[ws.primary],
            model=model,
            language=ws.language,
            module=module,
            instructions=request.instructions,
            context=context_files(ws.files, others),
            extra_checks=run.loadable,
            max_attempts=max_attempts,
        )
    except ModelOutputInvalid as exc:
        failed = GenerateTestsOutput(
            verified=False,
            path=ws.primary,
            test_path=test_path,
            test_code="",
            language=ws.language,
            framework=universal.TEST_FRAMEWORKS.get(ws.language or "", ""),
            passed=[],
            dropped=[],
            attempts=attempts_of_failure(exc),
            model=str(exc.details.get("model", model.model)),
            usage=Usage(),
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        record_action("test", request, {"verified": False, "attempts": len(failed.attempts)})
        return failed
    attempts = attempts_of(checked)
    usage = checked.usage
    tests = checked.value.code
    first = run.last_report
    failing = _failing(first)
    used = len(checked.attempts)
    if failing and used < max_attempts:
        report(on_progress, "repairing", 50, f"{len(failing)} tests fail against the code")
        try:
            repaired = ask_code(
                model,
                [
                    *universal_messages(ws, module, request.instructions),
                    _assistant(tests),
                    _failures_message(failing, ws.language or ""),
                ],
                task="test",
                language=ws.language,
                max_attempts=max_attempts - used,
                extra_checks=run.loadable,
            )
            attempts += [
                a.model_copy(update={"number": a.number + used}) for a in attempts_of(repaired)
            ]
            usage = usage + repaired.usage
            # The repair replaces the first version unless it made things worse.
            now_failing, now_passing = _failing(run.last_report), _passing(run.last_report)
            if len(now_passing) >= len(_passing(first)) and len(now_failing) <= len(failing):
                tests, failing = repaired.value.code, now_failing
        except ModelOutputInvalid as exc:
            attempts += attempts_of_failure(exc)

    dropped: list[DroppedTest] = []
    if failing:
        reasons = {c.name: c.message for c in failing}
        tests = _drop(tests, list(reasons), ws.language or "")
        dropped = [
            DroppedTest(name=name, reason=_first_line(reason) or "failed against the code")
            for name, reason in reasons.items()
        ]
    report(on_progress, "measuring", 85, "running the tests with coverage")
    final = run.run(tests, coverage=ws.language == "python")
    passed = [c.name for c in final.cases if c.outcome == "passed"]
    still = _failing(final)
    for case in still:  # dropping changed something else: never return a red test file
        dropped.append(DroppedTest(name=case.name, reason=_first_line(case.message)))
    if still:
        tests = _drop(tests, [c.name for c in still], ws.language or "")
        final = run.run(tests, coverage=ws.language == "python")
        passed = [c.name for c in final.cases if c.outcome == "passed"]
    output = GenerateTestsOutput(
        verified=final.ok and bool(passed),
        path=ws.primary,
        test_path=test_path,
        test_code=tests,
        language=ws.language,
        framework=universal.TEST_FRAMEWORKS.get(ws.language or "", ""),
        passed=passed,
        dropped=dropped,
        coverage=_only(final.coverage, ws.primary),
        coverage_total=_coverage_of(final, ws.primary),
        missing_lines=_only(final.missing_lines, ws.primary),
        isolation=final.isolation,
        attempts=attempts,
        model=checked.model,
        usage=usage,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    record_action(
        "test",
        request,
        {
            "verified": output.verified,
            "passed": len(passed),
            "dropped": len(dropped),
            "coverage": output.coverage_total,
        },
    )
    return output


class _Runner:
    """Runs a candidate test file against the code, remembering the last report."""

    def __init__(self, files: dict[str, str], test_path: str, language: str, limits: Limits):
        self.files, self.test_path, self.language, self.limits = files, test_path, language, limits
        self.last_report: TestReport | None = None

    def run(self, tests: str, *, coverage: bool = False) -> TestReport:
        from common.sandbox import run_node_tests, run_python_tests

        files = {**self.files, self.test_path: tests}
        if self.language == "python":
            result = run_python_tests(
                files, tests=[self.test_path], coverage=coverage, limits=self.limits
            )
        else:
            result = run_node_tests(files, tests=[self.test_path], limits=self.limits)
        self.last_report = result
        return result

    def loadable(self, tests: str) -> list[CheckResult]:
        """The test file loads and holds tests (each test passing is judged later)."""
        result = self.run(tests)
        if not result.ran:
            return [CheckResult("tests", True, "no test runner here", ran=False)]
        if result.timed_out:
            return [CheckResult("tests", False, "the tests did not finish in time")]
        if not result.cases:
            tail = result.output[-3000:] or "no tests were collected"
            return [CheckResult("tests", False, f"the test file did not run: {tail}")]
        broken = [c for c in result.cases if c.outcome == "error"]
        if broken and len(broken) == len(result.cases):
            return [CheckResult("tests", False, _first_line(broken[0].message, 800))]
        return [CheckResult("tests", True, f"{len(result.cases)} tests ran")]


def _test_file_for(ws: Workspace) -> tuple[str, str]:
    """Where the test file goes (beside the code) and how it imports the code."""
    pure = PurePosixPath(ws.primary)
    if ws.language == "python":
        name = str(pure.with_name(f"test_{pure.stem}.py"))
        module = pure.stem
    else:
        suffix = pure.suffix if pure.suffix in (".mjs", ".cjs") else ".js"
        name = str(pure.with_name(f"{pure.stem}.test{suffix}"))
        module = f"./{pure.name}"
    while name in ws.files:
        name = str(PurePosixPath(name).with_name("generated_" + PurePosixPath(name).name))
    return name, module


def _runnable(ws: Workspace) -> dict[str, str]:
    """The workspace without its own tests, plus what Node needs to load ES modules."""
    files = {p: c for p, c in ws.files.items() if not is_test_path(p)}
    code = ws.files[ws.primary]
    is_esm = "\nexport " in f"\n{code}" or "\nimport " in f"\n{code}"
    if ws.language == "javascript" and is_esm and "package.json" not in files:
        files["package.json"] = '{"type": "module"}\n'
    return files


def universal_messages(ws: Workspace, module: str, instructions: str) -> list[Any]:
    return prompts.render(
        "write_tests",
        language=ws.language or "",
        code=ws.files[ws.primary],
        module=module,
        framework=universal.TEST_FRAMEWORKS.get(ws.language or "", ""),
        instructions=instructions,
    )


def _assistant(tests: str) -> Any:
    from common.models.base import Message

    return Message(role="assistant", content=f"```\n{tests}\n```")


def _failures_message(failing: list[Any], language: str) -> Any:
    from common.models.base import Message

    lines = "\n".join(f"- {c.name}: {_first_line(c.message, 600)}" for c in failing[:10])
    return Message(
        role="user",
        content=prompts.text("repair_tests", failures=lines, language=language),
    )


def _failing(result: TestReport | None) -> list[Any]:
    if result is None:
        return []
    return [c for c in result.cases if c.outcome in ("failed", "error")]


def _passing(result: TestReport | None) -> list[Any]:
    return [] if result is None else [c for c in result.cases if c.outcome == "passed"]


def _drop(tests: str, names: list[str], language: str) -> str:
    if language == "python":
        return drop_python_tests(tests, names)
    return drop_js_tests(tests, names, language)


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # pytest's first "E ..." line is the failed assertion; else the first line.
    errors = [line for line in lines if line.startswith("E ")]
    chosen = errors[0][1:].strip() if errors else (lines[0] if lines else "")
    return chosen[:limit]


def _only(per_file: dict[str, Any] | None, path: str) -> dict[str, Any] | None:
    if per_file is None:
        return None
    return {p: v for p, v in per_file.items() if p == path or not is_test_path(p)}


def _coverage_of(result: TestReport, path: str) -> float | None:
    if result.coverage and path in result.coverage:
        return float(result.coverage[path])
    return None if result.coverage_total is None else float(result.coverage_total)


# The job kind's runner (common/jobs/kinds.py).
run_job = job_runner(GenerateTestsInput, generate_tests)
