"""What an action checked: static checks per file, then the tests in the sandbox.

Check names say what and where: ``parse:app.py``, ``lint:app.py``,
``test:test_app.py::test_total`` (a pytest node id or a node:test name),
``tests`` (the run as a whole, when it failed before any test ran).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from common.actions.inputs import is_test_path
from common.code.checks import CheckResult, check_code
from common.code.languages import language_for_path
from common.errors import ModelOutputInvalid

if TYPE_CHECKING:
    from common.actions.inputs import Repository
    from common.sandbox import Limits, TestReport

# A runner's output given back to the model: its tail holds the failure.
MAX_TEST_OUTPUT_CHARS = 4000
_JS_SUFFIXES = (".js", ".mjs", ".cjs")


class CheckOutcome(BaseModel):
    name: str
    ok: bool
    ran: bool = True
    message: str = ""
    line: int | None = None

    @classmethod
    def of(cls, result: CheckResult) -> CheckOutcome:
        return cls(
            name=result.name,
            ok=result.ok,
            ran=result.ran,
            message=result.message,
            line=result.line,
        )


class Verification(BaseModel):
    """Before and after, as the issue asks: what failed first, what passes now."""

    before: list[CheckOutcome]
    after: list[CheckOutcome]
    still_failing: list[CheckOutcome] = []
    attempts: int
    tests_ran: bool
    # Why no test ran, when none did: none found, or a test command this server does
    # not run. Said beside the checks, never as a failing one.
    no_tests_reason: str | None = None
    isolation: str | None = None


@dataclass
class CheckRun:
    checks: list[CheckResult]
    reports: list[TestReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failing(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    @property
    def passing(self) -> list[CheckResult]:
        return [c for c in self.checks if c.ok and c.ran]

    @property
    def tests_ran(self) -> bool:
        return any(r.ran and (r.cases or not r.ok) for r in self.reports)

    @property
    def no_tests_reason(self) -> str | None:
        if self.tests_ran:
            return None
        return next((c.message for c in self.checks if c.name == "tests" and not c.ran), None)

    @property
    def isolation(self) -> str | None:
        return next((r.isolation for r in self.reports if r.ran), None)

    def problems(self, limit: int = 12) -> str:
        """The failures, one per line, for the model to read."""
        lines = [f"- {c.name}: {c.message}".rstrip(": ") for c in self.failing[:limit]]
        more = len(self.failing) - limit
        if more > 0:
            lines.append(f"- ... and {more} more failing checks")
        return "\n".join(lines)


def static_checks(files: dict[str, str], paths: Iterable[str] | None = None) -> list[CheckResult]:
    """Parse and lint each file of a known language (``paths``, else all)."""
    results: list[CheckResult] = []
    for path in sorted(paths if paths is not None else files):
        language = language_for_path(path)
        if language is None:
            continue
        for r in check_code(files[path], language):
            results.append(CheckResult(f"{r.name}:{path}", r.ok, r.message, r.line, r.ran))
    return results


def test_checks(
    files: dict[str, str],
    *,
    limits: Limits,
    coverage: bool = False,
    repository: Repository | None = None,
) -> tuple[list[CheckResult], list[TestReport]]:
    """Run the workspace's Python and JavaScript tests in the sandbox, one check per test.

    With a ``repository``, its own tests run on its whole tree with ``files`` over it,
    in its environment (see :func:`repository_checks`).
    """
    from common.sandbox import run_node_tests, run_python_tests

    if repository is not None:
        return repository_checks(repository, files, limits=limits)

    tests = [p for p in files if is_test_path(p)]
    results: list[CheckResult] = []
    reports: list[TestReport] = []
    if any(p.endswith(".py") and not p.endswith("conftest.py") for p in tests):
        report = run_python_tests(files, coverage=coverage, limits=limits)
        reports.append(report)
        results += _as_checks(report)
    if any(p.endswith(_JS_SUFFIXES) for p in tests):
        report = run_node_tests(
            files, tests=[p for p in tests if p.endswith(_JS_SUFFIXES)], limits=limits
        )
        reports.append(report)
        results += _as_checks(report)
    return results, reports


def run_checks(
    files: dict[str, str],
    *,
    run_tests: bool,
    limits: Limits,
    coverage: bool = False,
    repository: Repository | None = None,
) -> CheckRun:
    """Static checks of every file, then (when asked and present) the tests."""
    checks = static_checks(files)
    reports: list[TestReport] = []
    if run_tests:
        results, reports = test_checks(
            files, limits=limits, coverage=coverage, repository=repository
        )
        checks += results
    return CheckRun(checks, reports)


def repository_checks(
    repository: Repository, files: dict[str, str], *, limits: Limits
) -> tuple[list[CheckResult], list[TestReport]]:
    """The repository's own tests, as its configuration runs them, on its whole tree with
    ``files`` (the candidate) over it, with its dependencies installed.

    The tests that touch the changed files run first; when they pass and the wall
    limit allows, the whole suite runs too, so a change that breaks another part of
    the repository is caught. An environment that cannot be built is one failing
    ``environment`` check with the installer's message, never a test failure.
    """
    import time

    from common.environments.build import ensure_environment
    from common.environments.run import run_repository_tests
    from common.environments.testplan import discover_tests, tests_for
    from common.errors import EnvironmentFailed
    from common.sandbox import TestReport

    plan = discover_tests(repository.tree)
    if plan.runner in ("none", "unknown"):
        report = TestReport(ran=False, output=plan.message)
        return _as_checks(report), [report]
    try:
        environment = ensure_environment(repository.project_id, repository.tree)
    except EnvironmentFailed as exc:
        tail = str(exc.details.get("installer", ""))[-MAX_TEST_OUTPUT_CHARS:]
        message = f"environment_failed: {exc.message}" + (f"\n{tail}" if tail else "")
        return [CheckResult("environment", False, message)], [TestReport(ran=False, output=message)]
    started = time.monotonic()
    touching = tests_for(plan, repository.tree, sorted(files))
    report = run_repository_tests(
        repository.tree,
        plan=plan,
        environment=environment,
        overlay=files,
        tests=touching or None,
        limits=limits,
    )
    left = limits.wall_s - (time.monotonic() - started)
    if touching and report.ok and left > limits.wall_s / 4:
        from dataclasses import replace

        whole = run_repository_tests(
            repository.tree,
            plan=plan,
            environment=environment,
            overlay=files,
            limits=replace(limits, wall_s=left),
        )
        if not whole.timed_out:
            report = whole
    return _as_checks(report), [report]


def _as_checks(report: TestReport) -> list[CheckResult]:
    if not report.ran:
        return [CheckResult("tests", True, report.output[:300] or "no test runner here", ran=False)]
    results = [
        CheckResult(
            f"test:{case.name}",
            case.outcome in ("passed", "skipped"),
            case.message[:1500],
            ran=case.outcome != "skipped",
        )
        for case in report.cases
    ]
    if report.timed_out:
        results.append(
            CheckResult("tests", False, "the tests did not finish within the time limit")
        )
    elif not report.ok and not any(not r.ok for r in results):
        # Failed before (or without) running a test: an import error, a collection error.
        tail = report.output[-MAX_TEST_OUTPUT_CHARS:]
        results.append(CheckResult("tests", False, tail or "the test run failed"))
    return results


def verification(before: CheckRun, after: CheckRun | None, *, attempts: int) -> Verification:
    final = after or before
    return Verification(
        before=[CheckOutcome.of(c) for c in before.failing],
        after=[CheckOutcome.of(c) for c in final.passing] if after is not None else [],
        still_failing=[CheckOutcome.of(c) for c in final.failing],
        attempts=attempts,
        tests_ran=final.tests_ran,
        no_tests_reason=final.no_tests_reason,
        isolation=final.isolation,
    )


def unverified(
    before: CheckRun, runs: dict[str, CheckRun], error: ModelOutputInvalid
) -> tuple[Verification, str | None]:
    """The verification of a model that never passed, and its last candidate that ran
    the tests (``runs``: candidate code -> its run, in order), if any."""
    last = next(reversed(runs), None)
    failed = verification(before, None, attempts=len(error.details.get("attempts", [])))
    if last is not None:
        failed.still_failing = [CheckOutcome.of(c) for c in runs[last].failing]
    return failed, last


def summary(run: CheckRun) -> dict[str, Any]:
    return {
        "passed": len(run.passing),
        "failed": len(run.failing),
        "tests_ran": run.tests_ran,
    }
