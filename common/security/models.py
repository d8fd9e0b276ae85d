"""What a security scan finds and answers: findings, tool runs, fixes, the output."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from common.actions.inputs import CodeInput
from common.models.base import Usage

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK: dict[str, int] = {s: len(SEVERITIES) - i for i, s in enumerate(SEVERITIES)}
Confidence = Literal["high", "medium", "low"]
# The tool a finding came from, as the SARIF run that carries it is named.
Tool = Literal["bandit", "semgrep", "secrets", "dependencies"]
TOOLS: tuple[Tool, ...] = ("bandit", "semgrep", "secrets", "dependencies")
FixStatus = Literal["confirmed", "unconfirmed"]


@dataclass
class Finding:
    """One problem at one place, from one tool (or several that agreed).

    ``rule`` is the tool's id (``B602``, ``python-eval-of-input``,
    ``secret-aws-access-key``, or the advisory id for a dependency). ``also`` lists
    the other tools' rules that reported the same problem at the same line.
    """

    tool: Tool
    rule: str
    severity: Severity
    path: str
    line: int | None
    message: str
    recommendation: str = ""
    confidence: Confidence = "medium"
    cwe: int | None = None
    title: str = ""
    also: list[tuple[Tool, str]] = field(default_factory=list)
    # A dependency's package, its version (or the lowest its range admits), the
    # advisory's aliases (CVE ids) and the versions that fix it.
    package: str | None = None
    version: str | None = None
    ecosystem: str | None = None
    aliases: list[str] = field(default_factory=list)
    fixed_in: list[str] = field(default_factory=list)
    # The text of the flagged line: the stable part of the fingerprint.
    snippet: str = ""
    # Another tool's rules for the same problem (a semgrep rule's metadata.bandit):
    # where one of them fired on the same line, the two are one finding.
    same_as: list[str] = field(default_factory=list)

    @property
    def rules(self) -> set[str]:
        return {self.rule, *(r for _, r in self.also)}

    def fingerprint(self) -> str:
        """Stable across edits elsewhere in the file: rule, path and the line's text."""
        basis = "\x00".join([self.rule, self.path, " ".join(self.snippet.split())])
        if self.package:
            basis += f"\x00{self.package}\x00{self.version}"
        return hashlib.sha256(basis.encode()).hexdigest()[:32]


class SecurityScanInput(CodeInput):
    """``code``, ``files`` or ``project_id``, and whether to propose fixes."""

    fix: bool = Field(
        False,
        description="Propose a fix per finding (a unified diff), each checked by a re-scan"
        " and the given tests.",
    )
    max_fixes: int = Field(
        5, ge=1, le=50, description="At most this many findings get a fix (most severe first)."
    )
    online: bool = Field(
        False,
        description="Also ask OSV.dev about the dependencies when it is reachable (2 s);"
        " the offline advisory database is always used.",
    )


class FindingOut(BaseModel):
    id: str = Field(description="F1, F2, ... in this report; fixes refer to it.")
    tool: Tool
    rule: str
    also_reported_by: list[str] = Field(
        [], description="`tool:rule` of other tools that found the same problem here."
    )
    severity: Severity
    confidence: Confidence
    path: str
    line: int | None
    title: str
    message: str
    recommendation: str
    cwe: int | None = None
    package: str | None = None
    version: str | None = None
    ecosystem: str | None = None
    aliases: list[str] = []
    fixed_in: list[str] = []
    fingerprint: str


class ToolRun(BaseModel):
    name: str
    ran: bool
    findings: int = 0
    message: str = ""
    duration_ms: int = 0


class FixOut(BaseModel):
    """A proposed fix for one finding: confirmed only when every check passed."""

    finding: str = Field(description="The finding's id (F1...).")
    path: str
    status: FixStatus
    diff: str = Field("", description="A unified diff `git apply` accepts (the whole file's fix).")
    reason: str = Field(description="What was checked, or why the fix is not confirmed.")
    checks: list[str] = Field([], description="The checks the fixed file passed.")
    attempts: int = 0


class SecurityScanOutput(BaseModel):
    report_id: str
    report_url: str
    kind: Literal["security"] = "security"
    created_at: datetime
    request_digest: str
    summary: dict[Severity, int] = Field(description="Findings by severity.")
    findings: list[FindingOut] = Field(description="Most severe first.")
    findings_total: int
    files_scanned: int
    checks: list[ToolRun] = Field(description="Each tool, and whether it ran.")
    sarif: dict[str, Any] = Field(description="The whole scan as one SARIF 2.1.0 log.")
    fixes: list[FixOut] = []
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    duration_ms: int
