"""The security worker: scan a file, have the model fix what was found, prove it by re-scanning.

Python is scanned with bandit (in process, on a temporary copy: nothing leaves the
machine) plus a few deterministic secret patterns; other files with the secret
patterns only. A fix is accepted only when it parses, a re-scan shows the findings
it was asked to fix gone, nothing new of high severity appeared, and the module
still defines what it defined before (deleting the code is not a fix).

A finding never carries the secret it found: messages say what kind of secret and
where, and at most its first four characters.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import re
import tempfile
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

from common.agents import prompts
from common.agents.checked import CodeCheck, ask_code
from common.agents.workers import WorkerName, WorkerOutput, WorkTask
from common.agents.workers.code import input_messages
from common.code.checks import CheckResult
from common.code.languages import detect_language, language_for_path
from common.errors import InvalidInput
from common.logs import get_logger
from common.models.base import ModelClient

log = get_logger("agents.security")

Severity = Literal["high", "medium", "low"]
_RANK = {"low": 0, "medium": 1, "high": 2}
# What the worker asks the model to fix; low findings are reported, not required.
FIX_AT_OR_ABOVE: Severity = "medium"


@dataclass(frozen=True)
class SecurityFinding:
    """One security problem: ``rule`` is a bandit test id (B602) or ``secret-*``."""

    rule: str
    severity: Severity
    confidence: Severity
    line: int | None
    message: str
    fix: str
    source: Literal["bandit", "secrets"]
    cwe: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.rule} ({self.severity}) {self.message} Fix: {self.fix}"


# -- secret patterns ----------------------------------------------------------

_KNOWN_SECRETS: list[tuple[str, re.Pattern[str], str]] = [
    ("secret-aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (
        "secret-aws-secret-key",
        re.compile(
            r"aws_?secret_?access_?key\w*['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
            re.I,
        ),
        "an AWS secret access key",
    ),
    (
        "secret-private-key",
        re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        "a private key",
    ),
    (
        "secret-github-token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        "a GitHub token",
    ),
    ("secret-slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    ("secret-stripe-key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}"), "a Stripe live key"),
    ("secret-google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "a Google API key"),
]
_SECRET_WORDS = r"password|passwd|pwd|secret|token|api_?key|apikey|access_?key|private_?key|auth"
# NAME = "value" (or NAME: 'value'), the name containing a secret word.
_QUOTED_ASSIGNMENT = re.compile(
    rf"(?P<name>[\w.-]*(?:{_SECRET_WORDS})[\w.-]*)['\"]?\s*(?::|=|:=|=>)\s*"
    r"(?P<q>['\"])(?P<value>[^'\"\s]{8,})(?P=q)",
    re.I,
)
# NAME=value with no quotes (.env, YAML, INI); never used on Python, where it is code.
_BARE_ASSIGNMENT = re.compile(
    rf"(?P<name>[\w.-]*(?:{_SECRET_WORDS})[\w.-]*)\s*(?::|=)\s*"
    r"(?P<value>[A-Za-z0-9+/=_\-.!@#%^&*~]{8,})\s*(?:#.*)?$",
    re.I | re.M,
)
_PLACEHOLDER = re.compile(
    r"changeme|change_me|example|placeholder|your[_-]|xxx|\*\*\*|<|\$\{|%\(|\{\{|dummy|redacted"
    r"|^test|^fake|^sample",
    re.I,
)
MIN_ENTROPY = 3.0  # bits per character: above English words, below random keys


def scan_secrets(text: str, *, bare_assignments: bool = True) -> list[SecurityFinding]:
    """Secrets written into ``text``: known key formats and high-entropy values of secret names.

    Parameters
    ----------
    bare_assignments:
        Also look at unquoted ``NAME=value`` lines (.env, YAML, INI). Off for code,
        where an unquoted right-hand side is an expression, not a secret.
    """
    findings: list[SecurityFinding] = []
    taken: set[int] = set()
    for rule, pattern, what in _KNOWN_SECRETS:
        for match in pattern.finditer(text):
            line = _line_of(text, match.start())
            taken.add(line)
            findings.append(
                SecurityFinding(
                    rule=rule,
                    severity="high",
                    confidence="high",
                    line=line,
                    message=f"{what} is written in the file ({_preview(match.group(0))}).",
                    fix="remove it, revoke it, and read it from the environment or a secret"
                    " store at run time.",
                    source="secrets",
                    cwe=798,
                )
            )
    patterns = [_QUOTED_ASSIGNMENT, *([_BARE_ASSIGNMENT] if bare_assignments else [])]
    for pattern in patterns:
        for match in pattern.finditer(text):
            line = _line_of(text, match.start())
            value = match.group("value")
            if line in taken or _PLACEHOLDER.search(value) or entropy(value) < MIN_ENTROPY:
                continue
            if pattern is _BARE_ASSIGNMENT and not (
                re.search(r"\d", value) and re.search(r"[A-Za-z]", value)
            ):
                continue  # a bare word (a reference, a mode name), not a key
            taken.add(line)
            findings.append(
                SecurityFinding(
                    rule="secret-assignment",
                    severity="medium",
                    confidence="medium",
                    line=line,
                    message=f"{match.group('name')} is given a hard-coded secret value"
                    f" ({_preview(value)}).",
                    fix=f"read {match.group('name')} from the environment (os.environ /"
                    " process.env) or a secret store instead.",
                    source="secrets",
                    cwe=798,
                )
            )
    return sorted(findings, key=lambda f: (f.line or 0, f.rule))


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _preview(secret: str) -> str:
    return f"starts {secret[:4]!r}, {len(secret)} characters"


# -- bandit -------------------------------------------------------------------

_FIX_HINTS = {
    "B102": "do not exec strings; call the code directly.",
    "B104": "bind to 127.0.0.1, or make the address configurable.",
    "B105": "read the password from the environment (os.environ) or a secret store.",
    "B106": "read the password from the environment (os.environ) or a secret store.",
    "B107": "do not default a password argument to a literal; require it or read it from the"
    " environment.",
    "B108": "use tempfile.mkstemp() or tempfile.TemporaryDirectory().",
    "B110": "log the exception or handle it; do not pass silently.",
    "B113": "pass timeout= to every requests call.",
    "B201": "never run Flask with debug=True in production; read it from configuration.",
    "B301": "do not unpickle untrusted data; use json.",
    "B303": "use hashlib.sha256 (or usedforsecurity=False for a non-security hash).",
    "B307": "use ast.literal_eval for literals, or parse the input explicitly.",
    "B311": "use the secrets module for tokens and keys.",
    "B324": "use hashlib.sha256 (or usedforsecurity=False for a non-security hash).",
    "B501": "keep certificate verification on (verify=True).",
    "B506": "use yaml.safe_load.",
    "B602": "pass a list of arguments and shell=False (the default).",
    "B605": "use subprocess.run([...]) with a list of arguments instead of os.system.",
    "B608": "use a parameterised query (cursor.execute(sql, params)), never string formatting.",
}
# Bandit quotes the literal it found in these messages: cut it, never echo a secret.
_QUOTES_SECRET = {"B105", "B106", "B107"}


def _bandit_scan(code: str) -> list[SecurityFinding] | None:
    """Bandit's findings, or None when bandit is not installed or could not read the code."""
    scanned = bandit_scan_files({"scanned.py": code})
    if scanned is None or scanned.skipped:
        return None
    return scanned.findings.get("scanned.py", [])


@dataclass
class BanditScan:
    """Bandit's findings per file, and the files it could not read (syntax errors)."""

    findings: dict[str, list[SecurityFinding]]
    skipped: list[str]


def bandit_scan_files(files: dict[str, str], *, root: str | None = None) -> BanditScan | None:
    """Bandit over many Python files with one manager (its plugins load once).

    Parameters
    ----------
    files:
        Relative path -> content of the Python files to scan.
    root:
        A folder that already holds ``files`` at their relative paths (nothing is
        written then); otherwise they are written to a temporary folder.

    Returns
    -------
    BanditScan | None
        None when bandit is not installed.
    """
    try:
        with warnings.catch_warnings():
            # stevedore deprecates an argument bandit still passes when it loads plugins.
            warnings.filterwarnings("ignore", message=".*verify_requirements")
            from bandit.core import config as bandit_config
            from bandit.core import manager as bandit_manager
            from bandit.core.docs_utils import get_url
    except ImportError:
        log.warning("bandit is not installed: Python is scanned for secrets only")
        return None
    logging.getLogger("bandit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="scan-") as scratch:
        folder = root or scratch
        if root is None:
            for rel, content in files.items():
                target = os.path.join(folder, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as fh:
                    fh.write(content)
        by_abs = {os.path.join(folder, rel): rel for rel in files}
        # ignore_nosec: a "# nosec" comment the model adds must not hide a finding.
        manager = bandit_manager.BanditManager(
            bandit_config.BanditConfig(), "file", quiet=True, ignore_nosec=True
        )
        manager.discover_files(sorted(by_abs))
        manager.run_tests()
        skipped = sorted(by_abs.get(str(entry[0]), str(entry[0])) for entry in manager.skipped)
        issues = manager.get_issue_list()
    findings: dict[str, list[SecurityFinding]] = {rel: [] for rel in files}
    for issue in issues:
        found_in = by_abs.get(str(issue.fname))
        if found_in is None:
            continue
        message = str(issue.text)
        if issue.test_id in _QUOTES_SECRET:
            message = message.split(":", 1)[0]
        more = get_url(str(issue.test_id))
        findings[found_in].append(
            SecurityFinding(
                rule=str(issue.test_id),
                severity=_severity(issue.severity),
                confidence=_severity(issue.confidence),
                line=int(issue.lineno) if issue.lineno else None,
                message=message.rstrip(".") + ".",
                fix=_FIX_HINTS.get(str(issue.test_id))
                or (f"see {more}" if more else "see the bandit documentation."),
                source="bandit",
                cwe=int(issue.cwe.id) if getattr(issue.cwe, "id", 0) else None,
            )
        )
    return BanditScan(findings, skipped)


def _severity(value: Any) -> Severity:
    text = str(value).lower()
    return "high" if text == "high" else "medium" if text == "medium" else "low"


def scan_python(
    code: str, *, bandit_findings: list[SecurityFinding] | None = None
) -> list[SecurityFinding]:
    """Bandit's findings and the secret patterns' on Python ``code``, in line order.

    Code that does not parse gets the secret patterns only (bandit needs the AST).
    ``bandit_findings``, when given, are this file's from :func:`bandit_scan_files`
    (a scan of many files runs bandit once, not once a file).
    """
    secrets = scan_secrets(code, bare_assignments=False)
    assigned = {f.line for f in secrets}
    if bandit_findings is None:
        bandit_findings = _bandit_scan(code) or []
    bandit_findings = [
        f
        for f in bandit_findings
        # A secret pattern already reported this hard-coded password: one finding a line.
        if not (f.rule in _QUOTES_SECRET and f.line in assigned)
    ]
    return sorted(bandit_findings + secrets, key=lambda f: (f.line or 0, f.rule))


def scan_file(path: str, content: str) -> list[SecurityFinding]:
    """Scan ``content`` as the file ``path`` is: Python fully, anything else for secrets."""
    if _is_python(path, content):
        return scan_python(content)
    return scan_secrets(content)


def _is_python(path: str, content: str) -> bool:
    language = language_for_path(path)
    if language is not None:
        return language == "python"
    return detect_language(content) == "python"


# -- the worker ---------------------------------------------------------------


def _to_fix(findings: list[SecurityFinding]) -> list[SecurityFinding]:
    return [f for f in findings if _RANK[f.severity] >= _RANK[FIX_AT_OR_ABOVE]]


def rescan_checks(path: str, original: str, before: list[SecurityFinding]) -> CodeCheck:
    """The check a fixed version must pass: targeted findings gone, nothing new and high."""
    targeted = {f.rule for f in _to_fix(before)}
    known = {f.rule for f in before}
    python = _is_python(path, original)
    defined = _defined_names(original) if python else set()

    def check(code: str) -> list[CheckResult]:
        after = scan_file(path, code)
        results = []
        for f in after:
            if f.rule in targeted and _RANK[f.severity] >= _RANK[FIX_AT_OR_ABOVE]:
                results.append(
                    CheckResult(f"still-{f.rule}", False, f"not fixed: {f.describe()}", f.line)
                )
            elif f.severity == "high" and f.rule not in known:
                results.append(
                    CheckResult(f"new-{f.rule}", False, f"new problem: {f.describe()}", f.line)
                )
        if python:
            missing = sorted(defined - _defined_names(code))
            if missing:
                results.append(
                    CheckResult(
                        "interface",
                        False,
                        "the fix removed what the file defined: "
                        + ", ".join(missing)
                        + "; keep every function and class, fix them in place.",
                    )
                )
        return results or [CheckResult("security-rescan", True)]

    return check


def defined_names(code: str) -> set[str]:
    """The top-level functions and classes ``code`` defines (empty when it does not parse)."""
    return _defined_names(code)


def _defined_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


class SecurityWorker:
    """Scans the file a task names and has the model fix what the scan found."""

    name: WorkerName = "security"

    def run(
        self,
        task: WorkTask,
        *,
        model: ModelClient,
        project: str,
        inputs: dict[str, str],
        feedback: str | None = None,
        max_attempts: int = 3,
    ) -> WorkerOutput:
        """Fix the security findings of ``inputs[task.path]``.

        Returns
        -------
        WorkerOutput
            The fixed file; ``findings`` lists the scan before (``"scan": "before"``)
            and after (``"scan": "after"``). A file with nothing to fix comes back
            unchanged, without asking the model.

        Raises
        ------
        InvalidInput
            ``task.path`` is not among ``inputs``.
        ModelOutputInvalid
            No answer parsed and passed the re-scan within ``max_attempts``.
        """
        if task.path not in inputs:
            raise InvalidInput(f"the security task's file {task.path} is not among its inputs")
        original = inputs[task.path]
        before = scan_file(task.path, original)
        to_fix = _to_fix(before)
        if not to_fix and not feedback:
            return WorkerOutput(
                files={task.path: original},
                findings=_report(before, before),
                attempts=0,
            )
        python = _is_python(task.path, original)
        language = "python" if python else language_for_path(task.path)
        listed = "\n".join(f"- {f.describe()}" for f in to_fix) or "- (none found by the scan)"
        messages = prompts.render(
            "security_fix",
            project=project,
            path=task.path,
            description=task.description,
            findings=listed,
            language=language or "",
            code=original,
            feedback=f"\nA previous version failed this check; fix it:\n{feedback}\n"
            if feedback
            else "",
        )
        others = {p: c for p, c in inputs.items() if p != task.path}
        messages[-1:-1] = input_messages(others)
        checked = ask_code(
            model,
            messages,
            task=f"security fix {task.path}",
            language=language,
            max_attempts=max_attempts,
            extra_checks=rescan_checks(task.path, original, before),
        )
        fixed = checked.value.code
        return WorkerOutput(
            files={task.path: fixed},
            checks=checked.value.checks,
            findings=_report(before, scan_file(task.path, fixed)),
            usage=checked.usage,
            attempts=len(checked.attempts),
        )


def _report(before: list[SecurityFinding], after: list[SecurityFinding]) -> list[dict[str, Any]]:
    return [{"scan": "before", **f.to_dict()} for f in before] + [
        {"scan": "after", **f.to_dict()} for f in after
    ]
