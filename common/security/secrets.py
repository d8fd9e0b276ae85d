"""Secrets written into files: the security worker's patterns plus detect-secrets.

detect-secrets (Apache-2.0, a 120 KB wheel, pure Python) runs in process, offline,
on the content in memory: its plugins are regular expressions and entropy limits,
and nothing is verified against a live service. The worker's patterns
(:func:`common.agents.workers.security.scan_secrets`) name the kind of key more
precisely; both are merged with one finding per file and line, the pattern's kept.

A finding never carries the secret: at most its first four characters.
"""

from __future__ import annotations

import re
from typing import Any

from common.agents.workers.security import SecurityFinding, scan_secrets
from common.logs import get_logger
from common.security.models import Finding, Severity

log = get_logger("security.secrets")

# Everything detect-secrets 1.5 ships but IPPublicDetector: a public IP address in
# code is a configuration smell, not a secret.
PLUGINS: list[dict[str, Any]] = [
    {"name": "ArtifactoryDetector"},
    {"name": "AWSKeyDetector"},
    {"name": "AzureStorageKeyDetector"},
    {"name": "BasicAuthDetector"},
    {"name": "CloudantDetector"},
    {"name": "DiscordBotTokenDetector"},
    {"name": "GitHubTokenDetector"},
    {"name": "GitLabTokenDetector"},
    {"name": "IbmCloudIamDetector"},
    {"name": "IbmCosHmacDetector"},
    {"name": "JwtTokenDetector"},
    {"name": "KeywordDetector", "keyword_exclude": ""},
    {"name": "MailchimpDetector"},
    {"name": "NpmDetector"},
    {"name": "OpenAIDetector"},
    {"name": "PrivateKeyDetector"},
    {"name": "PypiTokenDetector"},
    {"name": "SendGridDetector"},
    {"name": "SlackDetector"},
    {"name": "SoftlayerDetector"},
    {"name": "SquareOAuthDetector"},
    {"name": "StripeDetector"},
    {"name": "TelegramBotTokenDetector"},
    {"name": "TwilioKeyDetector"},
    {"name": "Base64HighEntropyString", "limit": 4.5},
    {"name": "HexHighEntropyString", "limit": 3.0},
]
# detect-secrets' default heuristics: references, UUIDs, sequences, templates...
FILTERS: list[dict[str, Any]] = [
    {"path": "detect_secrets.filters.allowlist.is_line_allowlisted"},
    {"path": "detect_secrets.filters.heuristic.is_indirect_reference"},
    {"path": "detect_secrets.filters.heuristic.is_likely_id_string"},
    {"path": "detect_secrets.filters.heuristic.is_lock_file"},
    {"path": "detect_secrets.filters.heuristic.is_not_alphanumeric_string"},
    {"path": "detect_secrets.filters.heuristic.is_potential_uuid"},
    {"path": "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign"},
    {"path": "detect_secrets.filters.heuristic.is_sequential_string"},
    {"path": "detect_secrets.filters.heuristic.is_swagger_file"},
    {"path": "detect_secrets.filters.heuristic.is_templated_secret"},
]
# A line can only hold a secret if it has a long token or names one: the other lines
# (most of any code base) skip the 26 plugins, which is most of the time they cost.
_CANDIDATE = re.compile(
    r"[A-Za-z0-9+/=_\-]{16,}|pass|pwd|secret|token|key|auth|cred|private|bearer|://[^/\s]+@",
    re.I,
)
_KNOWN_FORMAT = {
    "AWS Access Key": ("secret-aws-access-key", "an AWS access key id"),
    "Private Key": ("secret-private-key", "a private key"),
    "GitHub Token": ("secret-github-token", "a GitHub token"),
    "Slack Token": ("secret-slack-token", "a Slack token"),
    "Stripe Access Key": ("secret-stripe-key", "a Stripe key"),
}
_PATTERN_SEVERITY: dict[str, Severity] = {"high": "high", "medium": "medium", "low": "low"}


def scan_secret_patterns(path: str, content: str, *, python: bool) -> list[Finding]:
    """The security worker's patterns (known key formats, secret-named assignments)."""
    return [
        _from_worker(path, content, f) for f in scan_secrets(content, bare_assignments=not python)
    ]


def _from_worker(path: str, content: str, f: SecurityFinding) -> Finding:
    return Finding(
        tool="secrets",
        rule=f.rule,
        severity=_PATTERN_SEVERITY[f.severity],
        path=path,
        line=f.line,
        title=_title(f.rule),
        message=f.message,
        recommendation=f.fix,
        confidence=f.confidence,
        cwe=f.cwe,
        snippet=_line_text(content, f.line),
    )


def _title(rule: str) -> str:
    return "Hard-coded " + rule.removeprefix("secret-").replace("-", " ")


def detect_secrets_available() -> bool:
    try:
        import detect_secrets  # noqa: F401
    except ImportError:
        return False
    return True


def scan_detect_secrets(files: dict[str, str]) -> list[Finding]:
    """detect-secrets' findings in ``files``, without their values.

    Raises
    ------
    ImportError
        detect-secrets is not installed.
    """
    from detect_secrets.settings import transient_settings

    findings: list[Finding] = []
    with transient_settings({"plugins_used": PLUGINS, "filters_used": FILTERS}):
        for path in sorted(files):
            findings += _scan_one(path, files[path])
    return findings


def _scan_one(path: str, content: str) -> list[Finding]:
    # detect-secrets' own line loop (core.scan), on content in memory and only on the
    # lines that can hold a secret; its plugins and filters are used unchanged.
    from detect_secrets.core.scan import _is_filtered_out, _scan_line
    from detect_secrets.settings import get_plugins
    from detect_secrets.util.code_snippet import get_code_snippet

    lines = content.splitlines()
    out: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    plugins = get_plugins()
    for number, raw in enumerate(lines, 1):
        if not _CANDIDATE.search(raw):
            continue
        line = raw.rstrip()
        context = get_code_snippet(lines=lines, line_number=number)
        if _is_filtered_out(
            required_filter_parameters=["line"], filename=path, line=line, context=context
        ):
            continue
        for plugin in plugins:
            for secret in _scan_line(
                plugin=plugin, filename=path, line=line, line_number=number, context=context
            ):
                if _is_filtered_out(
                    required_filter_parameters=["context"],
                    filename=secret.filename,
                    secret=secret.secret_value,
                    plugin=plugin,
                    line=line,
                    context=context,
                ):
                    continue
                kind = str(secret.type)
                if (number, kind) in seen:
                    continue
                seen.add((number, kind))
                out.append(_from_detect_secrets(path, number, line, kind, secret.secret_value))
    return out


def _from_detect_secrets(path: str, line: int, text: str, kind: str, value: str | None) -> Finding:
    preview = f" (starts {value[:4]!r}, {len(value)} characters)" if value else ""
    if kind in _KNOWN_FORMAT:
        rule, what = _KNOWN_FORMAT[kind]
        severity: Severity = "high"
        confidence = "high"
    elif "High Entropy" in kind:
        rule, what = "secret-high-entropy-string", "a high-entropy string (a key or token?)"
        severity, confidence = "low", "low"
    elif kind == "Secret Keyword":
        rule, what = "secret-keyword", "a value assigned to a secret-named variable"
        severity, confidence = "medium", "medium"
    else:
        rule = "secret-" + re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
        what = f"a {kind}"
        severity, confidence = "high", "high"
    return Finding(
        tool="secrets",
        rule=rule,
        severity=severity,
        path=path,
        line=line,
        title=_title(rule),
        message=f"{what} is written in the file{preview}; detect-secrets: {kind}.",
        recommendation="remove it, revoke it, and read it from the environment or a secret"
        " store at run time.",
        confidence=confidence,  # type: ignore[arg-type]
        cwe=798,
        snippet=text,
    )


def merge_secrets(patterns: list[Finding], detected: list[Finding]) -> list[Finding]:
    """One finding per file and line: the worker's pattern wins, else the most severe."""
    from common.security.models import SEVERITY_RANK

    best: dict[tuple[str, int | None], Finding] = {}
    for f in patterns:
        best.setdefault((f.path, f.line), f)
    for f in detected:
        key = (f.path, f.line)
        have = best.get(key)
        if have is None:
            best[key] = f
        elif have.tool == f.tool and have.rule != f.rule and (have.tool, f.rule) not in have.also:
            if have in patterns or SEVERITY_RANK[have.severity] >= SEVERITY_RANK[f.severity]:
                have.also.append(("secrets", f.rule))
            else:
                f.also.append(("secrets", have.rule))
                best[key] = f
    return sorted(best.values(), key=lambda f: (f.path, f.line or 0))


def _line_text(content: str, line: int | None) -> str:
    if line is None:
        return ""
    lines = content.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""
