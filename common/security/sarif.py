"""The scan as one SARIF 2.1.0 log: one run per tool, each with its rules and results.

Every tool has its run, including one that did not run (``executionSuccessful:
false`` and a notification saying why, e.g. "semgrep not installed"), so a reader
can tell "nothing found" from "not looked". A problem two tools agree on is one
finding in the answer and one result in each tool's run, both carrying the
finding's id (``properties.findingId``). Severities follow GitHub code scanning:
``properties.security-severity`` on each rule (a CVSS-like number as a string),
``level`` error/warning/note on each result. A confirmed fix is attached to its
result as a SARIF ``fix`` replacing the file's text.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from common.security.models import TOOLS, Finding, Severity, Tool, ToolRun

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SECURITY_SEVERITY: dict[Severity, float] = {
    "critical": 9.5,
    "high": 8.0,
    "medium": 5.5,
    "low": 3.0,
    "info": 0.0,
}
LEVEL: dict[Severity, str] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}
DRIVERS: dict[Tool, dict[str, str]] = {
    "bandit": {"name": "bandit", "informationUri": "https://bandit.readthedocs.io/"},
    "semgrep": {"name": "semgrep", "informationUri": "https://semgrep.dev/"},
    "secrets": {
        "name": "ai-orchestrator-secrets",
        "fullName": "Secret patterns and detect-secrets",
        "informationUri": "https://github.com/Yelp/detect-secrets",
    },
    "dependencies": {
        "name": "ai-orchestrator-dependencies",
        "fullName": "Dependency check against the offline advisory database (OSV format)",
        "informationUri": "https://osv.dev/",
    },
}


def build_sarif(
    findings: list[tuple[str, Finding]],
    runs: list[ToolRun],
    *,
    versions: dict[str, str] | None = None,
    fixes: dict[str, tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    """The SARIF log of a scan.

    Parameters
    ----------
    findings:
        ``(finding id, finding)`` pairs, as in the answer.
    runs:
        What each tool did (its ``name`` is one of :data:`TOOLS`).
    versions:
        Tool name -> version, where known.
    fixes:
        Finding id -> (path, the file's text before, after) for confirmed fixes.
    """
    versions = versions or {}
    fixes = fixes or {}
    by_name = {r.name: r for r in runs}
    out_runs = []
    for tool in TOOLS:
        rules: dict[str, dict[str, Any]] = {}
        results: list[dict[str, Any]] = []
        for finding_id, f in findings:
            for rule in _rules_of(f, tool):
                descriptor = rules.get(rule)
                if descriptor is None:
                    descriptor = rules[rule] = _rule(rule, f)
                results.append(
                    _result(finding_id, rule, list(rules).index(rule), f, fixes.get(finding_id))
                )
        driver: dict[str, Any] = {**DRIVERS[tool], "rules": list(rules.values())}
        if versions.get(tool):
            driver["version"] = versions[tool]
        ran = by_name.get(tool)
        invocation: dict[str, Any] = {"executionSuccessful": bool(ran and ran.ran)}
        if ran is None or not ran.ran:
            invocation["toolExecutionNotifications"] = [
                {
                    "level": "warning",
                    "message": {"text": (ran.message if ran else "") or f"{tool} did not run"},
                }
            ]
        out_runs.append(
            {
                "tool": {"driver": driver},
                "invocations": [invocation],
                "originalUriBaseIds": {
                    "%SRCROOT%": {"description": {"text": "The root of the scanned files."}}
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        )
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": out_runs}


def _rules_of(f: Finding, tool: Tool) -> list[str]:
    found = [f.rule] if f.tool == tool else []
    found += [rule for t, rule in f.also if t == tool and rule not in found]
    return found


def _rule(rule: str, f: Finding) -> dict[str, Any]:
    tags = ["security"]
    if f.cwe:
        tags.append(f"external/cwe/cwe-{f.cwe}")
    if f.tool == "dependencies":
        tags.append("dependency")
    score = SECURITY_SEVERITY[f.severity]
    descriptor: dict[str, Any] = {
        "id": rule,
        "name": "".join(part.capitalize() for part in rule.replace("_", "-").split("-")),
        "shortDescription": {"text": (f.title or rule)[:200]},
        "defaultConfiguration": {"level": LEVEL[f.severity]},
        "properties": {"security-severity": f"{score:.1f}", "tags": tags},
    }
    if f.recommendation:
        descriptor["help"] = {"text": f.recommendation}
    if f.tool == "dependencies":
        descriptor["helpUri"] = f"https://osv.dev/vulnerability/{quote(rule)}"
        descriptor["fullDescription"] = {"text": f.message[:1000]}
    return descriptor


def _result(
    finding_id: str, rule: str, index: int, f: Finding, fix: tuple[str, str, str] | None
) -> dict[str, Any]:
    artifact = {"uri": quote(f.path), "uriBaseId": "%SRCROOT%"}
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if f.line:
        physical["region"] = {"startLine": f.line}
    properties: dict[str, Any] = {
        "findingId": finding_id,
        "severity": f.severity,
        "confidence": f.confidence,
    }
    if f.package:
        properties.update(
            package=f.package,
            version=f.version,
            ecosystem=f.ecosystem,
            aliases=f.aliases,
            fixedIn=f.fixed_in,
        )
    result: dict[str, Any] = {
        "ruleId": rule,
        "ruleIndex": index,
        "level": LEVEL[f.severity],
        "message": {"text": f.message or f.title or rule},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {"primaryLocationLineHash": f"{f.fingerprint()}:1"},
        "properties": properties,
    }
    if fix is not None:
        result["fixes"] = [_fix(*fix, rule=rule)]
    return result


def _fix(path: str, before: str, after: str, *, rule: str) -> dict[str, Any]:
    # The whole file replaced: a model's fix is checked as a whole file, not per hunk.
    return {
        "description": {"text": f"Checked fix for {rule}: re-scanned and tested."},
        "artifactChanges": [
            {
                "artifactLocation": {"uri": quote(path), "uriBaseId": "%SRCROOT%"},
                "replacements": [
                    {
                        "deletedRegion": {"charOffset": 0, "charLength": len(before)},
                        "insertedContent": {"text": after},
                    }
                ],
            }
        ],
    }
