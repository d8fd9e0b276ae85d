"""POST /api/security/scan: the deterministic scan, then (when asked) checked AI fixes.

The scan runs every tool on the files in a temporary folder, at once where it can:
semgrep in its own process, bandit in a child interpreter for a large tree, the
secret and dependency checks in this process meanwhile. Findings two tools agree
on (same line, a semgrep rule naming the bandit test) are one finding; a secret
found by both the patterns and detect-secrets is one finding per line. The
answer carries a severity summary, the findings (most severe first, ``F1``...)
and the SARIF log; the whole answer is stored as a report (kind ``security``)
that ``GET /api/reports/{id}`` returns.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from common.logs import get_logger
from common.security.models import (
    SEVERITIES,
    SEVERITY_RANK,
    Finding,
    FindingOut,
    SecurityScanInput,
    SecurityScanOutput,
    ToolRun,
)

if TYPE_CHECKING:
    from common.actions.base import Progress
    from common.jobs import JobContext
    from common.models.base import ModelClient
    from common.security.advisories import Advisory, AdvisoryStore

log = get_logger("security.scan")

# A report must fit a MongoDB document (16 MB): past this the list is cut, the
# total kept.
MAX_FINDINGS = 2000
# Bandit's hard-coded-password tests quote the value; a secret finding on the same
# line already says it (without the value).
_BANDIT_PASSWORD_TESTS = {"B105", "B106", "B107"}
# detect-secrets keeps its settings in a process-wide singleton.
_SECRETS_LOCK = threading.Lock()


@dataclass
class ScanResult:
    findings: list[Finding]
    runs: list[ToolRun]
    files_scanned: int
    versions: dict[str, str] = field(default_factory=dict)
    # The advisory database the dependencies were checked against (None: none read).
    advisories: AdvisoryStore | None = None

    def numbered(self) -> list[tuple[str, Finding]]:
        return [(f"F{i}", f) for i, f in enumerate(self.findings, 1)]

    def summary(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def scan_files(
    files: dict[str, str],
    *,
    advisories: AdvisoryStore | None = None,
    advisory_source: str = "",
    online: bool = False,
    semgrep: bool = True,
    on_progress: Progress | None = None,
) -> ScanResult:
    """Every deterministic check on ``files`` (relative path -> content).

    Parameters
    ----------
    advisories:
        The advisory database; by default PostgreSQL's (seeded from the shipped
        snapshot when empty), or the snapshot in memory when PostgreSQL is down.
    online:
        Also ask OSV.dev about pinned dependencies (when reachable).
    semgrep:
        Run semgrep when it is installed (a fix's re-scan of one file may skip it
        only when the first scan did not run it either).
    on_progress:
        A job's progress (step ``scan``, 15 to 38 %): per file while the secret
        patterns go through them, then each tool as it is waited for.
    """
    from common.actions.base import per_file, report
    from common.actions.inputs import is_test_path
    from common.security import sast
    from common.security.sca import check_dependencies, collect_dependencies
    from common.security.secrets import (
        detect_secrets_available,
        merge_secrets,
        scan_detect_secrets,
        scan_secret_patterns,
    )

    runs: list[ToolRun] = []
    versions: dict[str, str] = {}
    store = advisories
    python_paths = sast.python_targets(files)
    semgrep_paths = sast.semgrep_targets(files)
    with tempfile.TemporaryDirectory(prefix="secscan-") as root:
        sast.write_tree(root, files, sorted(set(python_paths) | set(semgrep_paths)))
        semgrep_run = (
            sast.start_semgrep(root, semgrep_paths)
            if semgrep
            else sast.SemgrepRun(None, message="semgrep skipped")
        )
        bandit_run = sast.start_bandit(root, python_paths, files) if python_paths else None

        # Meanwhile, here: secrets and dependencies.
        started = time.monotonic()
        patterns: list[Finding] = []
        on_file = per_file(on_progress, "scan", 15, 25)
        for number, path in enumerate(sorted(files), 1):
            patterns += scan_secret_patterns(path, files[path], python=path.endswith(".py"))
            if on_file is not None:
                on_file(number, len(files), path)
        detected: list[Finding] = []
        message = ""
        if detect_secrets_available():
            with _SECRETS_LOCK:
                detected = scan_detect_secrets(files)
            versions["secrets"] = _version("detect_secrets")
        else:
            message = "detect-secrets not installed: the secret patterns only"
        secrets = merge_secrets(patterns, detected)
        runs.append(
            ToolRun(
                name="secrets",
                ran=True,
                findings=len(secrets),
                message=message,
                duration_ms=_ms(started),
            )
        )

        started = time.monotonic()
        deps = collect_dependencies(files)
        report(on_progress, "scan", 27, f"checking {len(deps)} dependencies against advisories")
        dependency_findings: list[Finding] = []
        if deps:
            if store is None:
                from common.security.advisories import default_store

                store, advisory_source = default_store()
            extra: list[Advisory] = []
            online_note = ""
            if online:
                from common.security.advisories import query_osv_online

                pinned = {(d.ecosystem, d.name, d.version) for d in deps if d.exact}
                extra, online_note = query_osv_online(sorted(pinned))
            dependency_findings = check_dependencies(deps, store, extra=extra)
            message = f"{len(deps)} dependencies checked against {advisory_source or 'advisories'}"
            message += f"; {online_note}" if online_note else ""
        else:
            message = "no manifest or lock file"
        runs.append(
            ToolRun(
                name="dependencies",
                ran=bool(deps),
                findings=len(dependency_findings),
                message=message,
                duration_ms=_ms(started),
            )
        )

        bandit_findings: list[Finding] = []
        if bandit_run is not None:
            report(on_progress, "scan", 30, f"bandit on {len(python_paths)} Python files")
            scanned = bandit_run.wait()
            if scanned is None:
                runs.append(
                    ToolRun(
                        name="bandit",
                        ran=False,
                        message=bandit_run.error or "bandit not installed",
                        duration_ms=_ms(bandit_run.started),
                    )
                )
            else:
                secret_lines = {(f.path, f.line) for f in secrets}
                for path, found in scanned.findings.items():
                    lines = files[path].splitlines()
                    test = is_test_path(path)
                    for f in found:
                        if f.rule in _BANDIT_PASSWORD_TESTS and (path, f.line) in secret_lines:
                            continue
                        if test and f.rule == "B101":
                            continue  # assert is how tests check
                        text = lines[f.line - 1] if f.line and f.line <= len(lines) else ""
                        bandit_findings.append(sast.bandit_finding(path, f, text))
                skipped = (
                    f"; could not parse {', '.join(scanned.skipped[:5])}" if scanned.skipped else ""
                )
                runs.append(
                    ToolRun(
                        name="bandit",
                        ran=True,
                        findings=len(bandit_findings),
                        message=f"{len(python_paths)} Python files{skipped}",
                        duration_ms=_ms(bandit_run.started),
                    )
                )
                versions["bandit"] = _version("bandit")
        else:
            runs.append(ToolRun(name="bandit", ran=False, message="no Python files"))

        if semgrep:
            report(on_progress, "scan", 34, f"semgrep on {len(semgrep_paths)} files")
        results, not_ran = semgrep_run.wait()
        semgrep_findings = sast.semgrep_findings(results, files)
        runs.append(
            ToolRun(
                name="semgrep",
                ran=not not_ran,
                findings=len(semgrep_findings),
                message=not_ran or f"{len(semgrep_paths)} files, rules in the repository",
                duration_ms=_ms(semgrep_run.started),
            )
        )
    findings = sast.merge_sast(bandit_findings, semgrep_findings) + secrets + dependency_findings
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.path, f.line or 0, f.rule))
    order = {"bandit": 0, "semgrep": 1, "secrets": 2, "dependencies": 3}
    runs.sort(key=lambda r: order.get(r.name, 9))
    return ScanResult(findings, runs, len(files), versions, store)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    name = {"detect_secrets": "detect-secrets"}.get(package, package)
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def finding_out(finding_id: str, f: Finding) -> FindingOut:
    return FindingOut(
        id=finding_id,
        tool=f.tool,
        rule=f.rule,
        also_reported_by=[f"{t}:{r}" for t, r in f.also],
        severity=f.severity,
        confidence=f.confidence,
        path=f.path,
        line=f.line,
        title=f.title or f.rule,
        message=f.message,
        recommendation=f.recommendation,
        cwe=f.cwe,
        package=f.package,
        version=f.version,
        ecosystem=f.ecosystem,
        aliases=f.aliases,
        fixed_in=f.fixed_in,
        fingerprint=f.fingerprint(),
    )


def security_scan_request(
    request: SecurityScanInput,
    *,
    owner_key_id: UUID | None,
    model: ModelClient,
    max_attempts: int,
    on_progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> SecurityScanOutput:
    """Scan, fix when asked, store the report; the stored report.

    Raises
    ------
    NotFound
        ``project_id`` is not a project of this key.
    InvalidInput
        ``path`` is not among the files; a project without stored files; no key.
    StoreUnavailable
        MongoDB did not take the report.
    """
    from common.actions.base import record_action, report, request_digest
    from common.actions.inputs import load_workspace
    from common.errors import InvalidInput
    from common.models.base import Usage
    from common.reports import new_report_id, report_url, save_report
    from common.security.sarif import build_sarif

    if owner_key_id is None:
        raise InvalidInput("a security scan needs the key that asked for it (reports are per key)")
    started = time.monotonic()
    stop_here = checkpoint or (lambda: None)
    report(on_progress, "load", 5, "reading the files")
    workspace = load_workspace(request, owner_key_id=owner_key_id, whole=True)
    report(on_progress, "scan", 15, f"scanning {len(workspace.files)} file(s)")
    result = scan_files(workspace.files, online=request.online, on_progress=on_progress)
    numbered = result.numbered()
    stop_here()
    fixes = []
    sarif_fixes: dict[str, tuple[str, str, str]] = {}
    usage, model_name = Usage(), None
    if request.fix and numbered:
        from common.security.remediate import remediate

        report(on_progress, "fix", 40, "asking the model for fixes")
        remediation = remediate(
            workspace,
            numbered,
            scanned_with_semgrep=any(r.name == "semgrep" and r.ran for r in result.runs),
            advisories=result.advisories,
            model=model,
            max_attempts=request.options.max_attempts or max_attempts,
            max_fixes=request.max_fixes,
            run_tests=request.options.run_tests,
            timeout_s=request.options.timeout_s,
            on_progress=on_progress,
            checkpoint=stop_here,
        )
        fixes, sarif_fixes = remediation.fixes, remediation.sarif_fixes
        usage, model_name = remediation.usage, remediation.model
    stop_here()
    report(on_progress, "store", 90, "storing the report")
    report_id = new_report_id()
    digest = request_digest(request)
    output = SecurityScanOutput(
        report_id=report_id,
        report_url=report_url(report_id),
        created_at=datetime.now(UTC),
        request_digest=digest,
        summary=result.summary(),
        findings=[finding_out(i, f) for i, f in numbered[:MAX_FINDINGS]],
        findings_total=len(numbered),
        files_scanned=result.files_scanned,
        checks=result.runs,
        sarif=build_sarif(
            numbered[:MAX_FINDINGS], result.runs, versions=result.versions, fixes=sarif_fixes
        ),
        fixes=fixes,
        model=model_name,
        usage=usage,
        duration_ms=_ms(started),
    )
    save_report(
        "security",
        key_id=owner_key_id,
        body=output.model_dump(mode="json"),
        report_id=report_id,
        request_digest=digest,
    )
    record_action(
        "security_scan",
        request,
        {
            "key_id": str(owner_key_id),
            "report_id": report_id,
            "summary": output.summary,
            "checks": [r.model_dump() for r in result.runs],
            "fixes": {
                "confirmed": sum(1 for f in fixes if f.status == "confirmed"),
                "unconfirmed": sum(1 for f in fixes if f.status == "unconfirmed"),
            },
        },
    )
    report(on_progress, "done", 100, f"report {report_id}")
    return output


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The "security_scan" job: the same scan as the request (its options.max_attempts
    included), with progress and cancel (JobCancelled: no report is stored)."""
    # Imported here, as the rest of the actions layer is: the scan's module stays light.
    from common.actions.base import job_runner

    return job_runner(SecurityScanInput, security_scan_request, cancellable=True)(input, ctx)
