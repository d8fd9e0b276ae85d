"""Checked fixes for a scan's findings: one model answer per file, proven or not counted.

For each file with findings worth fixing (medium and above, most severe first, at
most ``max_fixes``), the model is asked for the whole fixed file; the answer must
parse (and lint), and then:

- a re-scan of the file (the same tools) no longer reports the finding: none of
  its rules near its line (3 lines, plus the number of lines the fix added);
- the re-scan reports nothing new of high or critical severity;
- a Python file still defines every top-level function and class it defined;
- the tests that passed before still pass in the sandbox (``options.run_tests``).

An answer that fails goes back to the model with what failed, up to
``max_attempts``. Every parsed answer is kept: when none passes everything, the
best one still confirms the findings it removed if it passed everything else, and
the others come back ``unconfirmed`` with the reason and the candidate diff.

A vulnerable pin in a requirements file is fixed without the model (pinned to the
version that ends every advisory on it) and re-scanned; it stays ``unconfirmed``
because the sandbox installs nothing, so no test runs with the new version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from common.code.checks import CheckResult
from common.logs import get_logger
from common.models.base import Usage
from common.security.models import SEVERITY_RANK, Finding, FixOut

if TYPE_CHECKING:
    from common.actions.base import Progress
    from common.actions.inputs import Workspace
    from common.models.base import ModelClient
    from common.sandbox import Limits
    from common.security.advisories import AdvisoryStore

log = get_logger("security.remediate")

NEAR_LINES = 3
FIX_FROM = "medium"
_FIXABLE_TOOLS = {"bandit", "semgrep", "secrets"}


@dataclass
class Remediation:
    fixes: list[FixOut] = field(default_factory=list)
    sarif_fixes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


@dataclass
class Candidate:
    """One parsed answer and what its checks found."""

    code: str
    gone: set[str]
    problems: dict[str, str]
    new_high: list[str]
    interface: str
    tests: list[str]
    tests_ran: bool

    @property
    def sound(self) -> bool:
        """Passed everything that is about the whole file."""
        return not self.new_high and not self.interface and not self.tests


def choose(
    numbered: list[tuple[str, Finding]], files: dict[str, str], max_fixes: int
) -> list[tuple[str, Finding]]:
    """The findings worth a fix: medium and above, with a line, most severe first."""
    wanted = []
    for finding_id, f in numbered:
        if SEVERITY_RANK[f.severity] < SEVERITY_RANK[FIX_FROM] or f.line is None:
            continue
        if f.path not in files:
            continue
        if f.tool in _FIXABLE_TOOLS or (
            f.tool == "dependencies" and PurePosixPath(f.path).name.endswith(".txt")
        ):
            wanted.append((finding_id, f))
    wanted.sort(key=lambda item: -SEVERITY_RANK[item[1].severity])
    return wanted[:max_fixes]


def remediate(
    workspace: Workspace,
    numbered: list[tuple[str, Finding]],
    *,
    scanned_with_semgrep: bool,
    advisories: AdvisoryStore | None,
    model: ModelClient,
    max_attempts: int,
    max_fixes: int,
    run_tests: bool,
    timeout_s: float,
    on_progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> Remediation:
    """A fix per chosen finding, each ``confirmed`` or ``unconfirmed`` with the reason."""
    from common.actions.base import report
    from common.sandbox import Limits

    files = workspace.files
    chosen = choose(numbered, files, max_fixes)
    by_path: dict[str, list[tuple[str, Finding]]] = {}
    for item in chosen:
        by_path.setdefault(item[1].path, []).append(item)
    out = Remediation()
    limits = Limits(wall_s=timeout_s)
    baseline: set[str] | None = None
    for n, (path, targeted) in enumerate(sorted(by_path.items()), 1):
        if checkpoint is not None:
            checkpoint()
        report(on_progress, "fix", 40 + 45 * n / (len(by_path) + 1), f"fixing {path}")
        if targeted[0][1].tool == "dependencies":
            out.fixes += _pin_requirements(path, files[path], targeted, numbered, advisories)
            continue
        if baseline is None:
            baseline = _passing_tests(files, limits) if run_tests and workspace.tests else set()
        _fix_file(
            out,
            path,
            files,
            targeted,
            known=[f for _, f in numbered if f.path == path and f.tool != "dependencies"],
            semgrep=scanned_with_semgrep,
            model=model,
            max_attempts=max_attempts,
            limits=limits,
            baseline=baseline,
            run_tests=run_tests and bool(workspace.tests),
        )
    return out


# -- dependencies ---------------------------------------------------------------------


def _pin_requirements(
    path: str,
    content: str,
    targeted: list[tuple[str, Finding]],
    numbered: list[tuple[str, Finding]],
    advisories: AdvisoryStore | None,
) -> list[FixOut]:
    from common.code.diff import unified_diff
    from common.security.advisories import default_store
    from common.security.sca import check_dependencies, parse_manifest, pin_fix, pin_target

    fixed = content
    notes: dict[str, str] = {}
    packages = {(f.package, f.version, f.line) for _, f in targeted}
    for package, version, line in sorted(packages, key=str):
        if not package or not version or line is None:
            continue
        # Every advisory on this pin, not only the chosen ones: one bump ends them all.
        same = [f for _, f in numbered if f.path == path and f.package == package]
        target = pin_target(same)
        if target is None:
            notes[package] = f"no fixed version of {package} is known"
            continue
        bumped = pin_fix(path, fixed, package=package, version=version, line=line, target=target)
        if bumped is None:
            notes[package] = f"{package} is not pinned with == on line {line}"
            continue
        fixed = bumped
    remaining: set[str] = set()
    if fixed != content:
        store = advisories if advisories is not None else default_store()[0]
        after = check_dependencies(parse_manifest(path, fixed), store)
        remaining = {f"{f.package}:{f.rule}" for f in after}
    diff = unified_diff({path: content}, {path: fixed}) if fixed != content else ""
    out = []
    for finding_id, f in targeted:
        key = f"{f.package}:{f.rule}"
        if f.package in notes:
            reason = notes[f.package or ""]
        elif key in remaining:
            reason = f"the re-scan still reports {f.rule} after the pin"
        else:
            reason = (
                f"re-scan: pinning {f.package} to the fixed version ends {f.rule}; not confirmed"
                " because no test ran with the new version (the sandbox installs nothing)"
            )
        out.append(
            FixOut(
                finding=finding_id,
                path=path,
                status="unconfirmed",
                diff=diff,
                reason=reason,
                checks=["parse", "rescan"] if key not in remaining and diff else [],
            )
        )
    return out


# -- code: the model's fix ------------------------------------------------------------


def _passing_tests(files: dict[str, str], limits: Limits) -> set[str]:
    from common.actions.verify import test_checks

    results, _ = test_checks(files, limits=limits)
    return {r.name for r in results if r.ok and r.ran}


def rescan(path: str, code: str, *, semgrep: bool) -> list[Finding]:
    """The scan's code tools on one file (its dependencies are not a code fix's business)."""
    from common.security.advisories import MemoryAdvisoryStore
    from common.security.scan import scan_files

    result = scan_files({path: code}, advisories=MemoryAdvisoryStore(), semgrep=semgrep)
    return [f for f in result.findings if f.tool != "dependencies"]


def still_reported(f: Finding, after: list[Finding], shift: int) -> Finding | None:
    """The finding of ``after`` that is ``f`` again (a shared rule near its line)."""
    if f.line is None:
        return None
    reach = NEAR_LINES + abs(shift)
    for a in after:
        if a.line is not None and a.rules & f.rules and abs(a.line - f.line) <= reach:
            return a
    return None


def _fix_file(
    out: Remediation,
    path: str,
    files: dict[str, str],
    targeted: list[tuple[str, Finding]],
    *,
    known: list[Finding],
    semgrep: bool,
    model: ModelClient,
    max_attempts: int,
    limits: Limits,
    baseline: set[str],
    run_tests: bool,
) -> None:
    from common.actions.verify import test_checks
    from common.agents import prompts
    from common.agents.checked import ask_code
    from common.agents.workers.code import input_messages
    from common.agents.workers.security import defined_names
    from common.code.diff import unified_diff
    from common.code.languages import language_for_path
    from common.errors import AppError, ModelOutputInvalid

    original = files[path]
    # What the scan already reported here is not "new" when a fix leaves it.
    known_rules: set[str] = set().union(*(f.rules for f in known)) if known else set()
    python = path.endswith(".py")
    defined = defined_names(original) if python else set()
    candidates: list[Candidate] = []

    def check(code: str) -> list[CheckResult]:
        after = rescan(path, code, semgrep=semgrep)
        shift = len(code.splitlines()) - len(original.splitlines())
        gone: set[str] = set()
        problems: dict[str, str] = {}
        for finding_id, f in targeted:
            again = still_reported(f, after, shift)
            if again is None:
                gone.add(finding_id)
            else:
                problems[finding_id] = (
                    f"{again.rule} is still reported at line {again.line}: {again.message}"
                )
        new_high = [
            f"{a.rule} at line {a.line}: {a.message}"
            for a in after
            if SEVERITY_RANK[a.severity] >= SEVERITY_RANK["high"] and not (a.rules & known_rules)
        ]
        missing = sorted(defined - defined_names(code)) if python else []
        interface = (
            "the fix removed what the file defined: "
            + ", ".join(missing)
            + "; keep every function and class, fix them in place."
            if missing
            else ""
        )
        broken: list[str] = []
        tests_ran = False
        if run_tests and gone and not new_high and not interface:
            results, reports = test_checks({**files, path: code}, limits=limits)
            tests_ran = any(r.ran for r in reports)
            broken = [
                f"{r.name}: {r.message[:300]}"
                for r in results
                if not r.ok and (r.name in baseline or r.name == "tests")
            ]
        candidates.append(Candidate(code, gone, problems, new_high, interface, broken, tests_ran))
        results_out = [
            CheckResult(f"still-{finding_id}", False, message)
            for finding_id, message in problems.items()
        ]
        results_out += [CheckResult("new-high", False, f"new problem: {m}") for m in new_high]
        if interface:
            results_out.append(CheckResult("interface", False, interface))
        results_out += [CheckResult("tests", False, b) for b in broken]
        if results_out:
            return results_out
        passed = [CheckResult("security-rescan", True)]
        if tests_ran:
            passed.append(CheckResult("tests", True, "the tests that passed before still pass"))
        return passed

    language = language_for_path(path)
    listed = "\n".join(
        f"- {fid} line {f.line}: {f.rule} ({f.severity}) {f.message} Fix: {f.recommendation}"
        for fid, f in targeted
    )
    tests_note = (
        "\nThese tests must still pass: " + ", ".join(sorted(baseline)) + "\n"
        if run_tests and baseline
        else ""
    )
    messages = prompts.render(
        "security_scan_fix",
        path=path,
        findings=listed,
        tests=tests_note,
        language=language or "",
        code=original,
    )
    context = {
        p: c for p, c in files.items() if p != path and (p.endswith(".py") or p.endswith(".js"))
    }
    messages[-1:-1] = input_messages(dict(list(context.items())[:8]))
    error = ""
    attempts = 0
    try:
        checked = ask_code(
            model,
            messages,
            task=f"security fix {path}",
            language=language,
            max_attempts=max_attempts,
            extra_checks=check,
        )
        out.usage = out.usage + checked.usage
        out.model = checked.model
        attempts = len(checked.attempts)
    except ModelOutputInvalid as exc:
        error = exc.message
        attempts = len(exc.details.get("attempts", []))
        out.model = out.model or model.model
    except AppError as exc:
        # The model server is down or slow: the scan stands, the fixes say why not.
        error = f"the model could not answer: {exc.message}"
        out.model = out.model or model.model
    best = _best(candidates)
    diff = unified_diff({path: original}, {path: best.code}) if best else ""
    for finding_id, _finding in targeted:
        if best is not None and best.sound and finding_id in best.gone:
            checks = ["parse", "rescan", "no-new-high"]
            if python:
                checks.append("interface")
            if best.tests_ran:
                checks.append("tests")
            reason = "parses, the re-scan no longer reports it, nothing new of high severity"
            reason += (
                ", and the tests that passed before still pass"
                if best.tests_ran
                else "; no tests were given or run"
            )
            out.fixes.append(
                FixOut(
                    finding=finding_id,
                    path=path,
                    status="confirmed",
                    diff=diff,
                    reason=reason,
                    checks=checks,
                    attempts=attempts,
                )
            )
            out.sarif_fixes[finding_id] = (path, original, best.code)
            continue
        out.fixes.append(
            FixOut(
                finding=finding_id,
                path=path,
                status="unconfirmed",
                diff=diff,
                reason=_why_not(finding_id, best, error),
                attempts=attempts,
            )
        )


def _best(candidates: list[Candidate]) -> Candidate | None:
    if not candidates:
        return None
    return max(
        enumerate(candidates),
        # Sound first, then the most findings gone, then the latest answer.
        key=lambda item: (item[1].sound, len(item[1].gone), item[0]),
    )[1]


def _why_not(finding_id: str, best: Candidate | None, error: str) -> str:
    if best is None:
        return error or "the model gave no answer that parses"
    reasons = []
    if finding_id in best.problems:
        reasons.append(best.problems[finding_id])
    reasons += [f"new high-severity finding: {m}" for m in best.new_high[:3]]
    if best.interface:
        reasons.append(best.interface)
    reasons += [f"a test failed: {t}" for t in best.tests[:3]]
    if not reasons and finding_id in best.gone:
        reasons.append("fixed in a candidate that failed other checks")
    return "; ".join(reasons) or error or "not fixed"
