"""Static analysis: bandit (Python) through the security worker, semgrep with our rules.

Bandit runs in process for a small scan; past :data:`BANDIT_CHILD_CHARS` of Python
it runs in child interpreters (this module's ``__main__``), one shard of the files
per core, while this process scans for secrets and dependencies.

Semgrep runs as a subprocess on the rules in ``rules/`` (never the registry),
with metrics and the version check off: it works without a network. Its wheel is
72 MB (287 MB installed, LGPL-2.1) and pins packages this project's own cannot
share (``opentelemetry-api~=1.37`` against FastAPI's ``>=1.44``, ``click``,
``protobuf<7``...), so it is installed in an environment of its own and found
through ``SEMGREP_BIN``, then ``PATH``. Where it is absent (the Lambda layer has
no room for it) the scan reports "semgrep not installed" as a check that did not
run, and bandit and the secret and dependency checks still run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from common.agents.workers.security import BanditScan, SecurityFinding, bandit_scan_files
from common.logs import get_logger
from common.security.models import Finding, Severity

log = get_logger("security.sast")

SEMGREP_LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
}
# Below this much Python, starting a child interpreter costs more than it saves.
BANDIT_CHILD_CHARS = 300_000
SEMGREP_TIMEOUT_S = 300.0
_SEMGREP_SEVERITY: dict[str, Severity] = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}
_BANDIT_SEVERITY: dict[str, Severity] = {"high": "high", "medium": "medium", "low": "low"}


def rules_dir() -> str:
    return str(resources.files("common.security") / "rules")


# Where `make` installs semgrep, in a virtualenv of its own (a checkout, not a wheel).
_MAKE_SEMGREP = Path(__file__).resolve().parents[2] / ".tools" / "semgrep" / "bin" / "semgrep"


def semgrep_binary() -> str | None:
    """The semgrep executable: ``SEMGREP_BIN``, else ``semgrep`` on PATH, else the one
    ``make`` installed under ``.tools/``."""
    configured = os.environ.get("SEMGREP_BIN", "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("semgrep")
    if found:
        return found
    return str(_MAKE_SEMGREP) if os.access(_MAKE_SEMGREP, os.X_OK) else None


def semgrep_targets(files: dict[str, str]) -> list[str]:
    return sorted(p for p in files if PurePosixPath(p).suffix in SEMGREP_LANGUAGES)


def python_targets(files: dict[str, str]) -> list[str]:
    return sorted(p for p in files if p.endswith(".py"))


def write_tree(root: str, files: dict[str, str], paths: list[str]) -> None:
    for rel in paths:
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(files[rel])


# -- bandit -------------------------------------------------------------------------


@dataclass
class BanditRun:
    """Bandit started: in process (done already) or in child interpreters."""

    result: BanditScan | None = None
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    error: str = ""

    def wait(self) -> BanditScan | None:
        if not self.children:
            return self.result
        merged = BanditScan({}, [])
        for child in self.children:
            out, err = child.communicate()
            if child.returncode != 0:
                self.error = err.decode(errors="replace")[-500:]
                log.warning("bandit child failed", extra={"stderr": self.error})
                return None
            scan = _decode_bandit(json.loads(out))
            if scan is None:
                return None
            merged.findings.update(scan.findings)
            merged.skipped += scan.skipped
        return merged


def start_bandit(root: str, paths: list[str], files: dict[str, str]) -> BanditRun:
    """Bandit over ``paths`` (already written under ``root``).

    A large tree is split by size into one shard per core, each in a child
    interpreter: bandit is single-threaded and the longest part of a scan.
    """
    if sum(len(files[p]) for p in paths) < BANDIT_CHILD_CHARS:
        return BanditRun(result=bandit_scan_files({p: files[p] for p in paths}, root=root))
    shards: list[list[str]] = [[] for _ in range(max(2, min(4, os.cpu_count() or 2)))]
    sizes = [0] * len(shards)
    for rel in sorted(paths, key=lambda p: -len(files[p])):
        smallest = sizes.index(min(sizes))
        shards[smallest].append(rel)
        sizes[smallest] += len(files[rel])
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = BanditRun()
    for shard in (s for s in shards if s):
        child = subprocess.Popen(
            [sys.executable, "-m", "common.security.sast", "bandit", root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=package_root,
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(shard).encode())
        child.stdin.close()
        child.stdin = None  # communicate() must not write or close it again
        run.children.append(child)
    return run


def _encode_bandit(scan: BanditScan | None) -> dict[str, Any]:
    if scan is None:
        return {"installed": False}
    return {
        "installed": True,
        "skipped": scan.skipped,
        "findings": {p: [f.to_dict() for f in fs] for p, fs in scan.findings.items()},
    }


def _decode_bandit(data: dict[str, Any]) -> BanditScan | None:
    if not data.get("installed"):
        return None
    return BanditScan(
        findings={
            p: [SecurityFinding(**f) for f in fs] for p, fs in data.get("findings", {}).items()
        },
        skipped=list(data.get("skipped", [])),
    )


def bandit_finding(path: str, f: SecurityFinding, snippet: str) -> Finding:
    return Finding(
        tool="bandit" if f.source == "bandit" else "secrets",
        rule=f.rule,
        severity=_BANDIT_SEVERITY[f.severity],
        path=path,
        line=f.line,
        title=f.message.split(":")[0].rstrip("."),
        message=f.message,
        recommendation=f.fix,
        confidence=f.confidence,
        cwe=f.cwe,
        snippet=snippet,
    )


# -- semgrep ------------------------------------------------------------------------


@dataclass
class SemgrepRun:
    binary: str | None
    child: subprocess.Popen[bytes] | None = None
    started: float = field(default_factory=time.monotonic)
    message: str = ""

    def wait(self, timeout_s: float = SEMGREP_TIMEOUT_S) -> tuple[list[dict[str, Any]], str]:
        """Semgrep's results, and what to say when it did not run (empty when it did)."""
        if self.child is None:
            return [], self.message or "semgrep not installed"
        try:
            out, err = self.child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.communicate()
            return [], f"semgrep did not finish within {timeout_s:.0f} s"
        # Exit 1 means "findings" with --error; without it 0 is success, anything else not.
        if self.child.returncode not in (0, 1):
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            return [], "semgrep failed: " + " | ".join(tail)
        try:
            data = json.loads(out or b"{}")
        except json.JSONDecodeError:
            return [], "semgrep gave no readable output"
        errors = [e for e in data.get("errors", []) if e.get("level") == "error"]
        if errors:
            log.warning("semgrep reported errors", extra={"errors": errors[:3]})
        return list(data.get("results", [])), ""


def start_semgrep(root: str, paths: list[str]) -> SemgrepRun:
    """Semgrep over ``paths`` (already written under ``root``), not waited for."""
    binary = semgrep_binary()
    if binary is None:
        return SemgrepRun(None, message="semgrep not installed")
    if not paths:
        return SemgrepRun(binary, message="no Python or JavaScript files")
    # An empty .semgrepignore: its defaults would skip tests/ and more.
    with open(os.path.join(root, ".semgrepignore"), "w", encoding="utf-8") as fh:
        fh.write("")
    env = {
        **os.environ,
        "SEMGREP_ENABLE_VERSION_CHECK": "0",
        "SEMGREP_SEND_METRICS": "off",
        # Semgrep keeps settings and a log under HOME; keep them out of the user's.
        "HOME": os.path.join(root, ".semgrep-home"),
        "XDG_CONFIG_HOME": os.path.join(root, ".semgrep-home"),
    }
    command = [
        binary,
        "scan",
        "--config",
        rules_dir(),
        "--metrics=off",
        "--disable-version-check",
        "--json",
        "--quiet",
        "--no-git-ignore",
        "--jobs",
        "1",
        "--timeout",
        "30",
        *paths,
    ]
    try:
        child = subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        return SemgrepRun(binary, message=f"semgrep could not start: {exc}")
    return SemgrepRun(binary, child=child)


def semgrep_findings(results: list[dict[str, Any]], files: dict[str, str]) -> list[Finding]:
    findings = []
    for r in results:
        path = str(r.get("path", "")).removeprefix("./")
        if path not in files:
            continue
        extra = r.get("extra") or {}
        metadata = extra.get("metadata") or {}
        rule = str(r.get("check_id", "")).rsplit(".", 1)[-1]
        line = int((r.get("start") or {}).get("line") or 0) or None
        message = " ".join(str(extra.get("message", "")).split())
        first, _, advice = message.partition(": ")
        cwe_text = str(metadata.get("cwe", ""))
        cwe = int(cwe_text.split("-")[1]) if cwe_text.startswith("CWE-") else None
        lines = files[path].splitlines()
        finding = Finding(
            tool="semgrep",
            rule=rule,
            severity=_SEMGREP_SEVERITY.get(str(extra.get("severity", "")).upper(), "medium"),
            path=path,
            line=line,
            title=first.split(":")[0][:120],
            message=message,
            recommendation=_advice(message),
            confidence="high",
            cwe=cwe,
            snippet=lines[line - 1] if line and line <= len(lines) else "",
            same_as=[str(b) for b in metadata.get("bandit", []) or []],
        )
        findings.append(finding)
    return findings


def _advice(message: str) -> str:
    sentences = [s.strip() for s in message.split(". ") if s.strip()]
    return (sentences[-1].rstrip(".") + ".") if len(sentences) > 1 else ""


def merge_sast(bandit: list[Finding], semgrep: list[Finding]) -> list[Finding]:
    """Bandit's and semgrep's findings, one per problem: a semgrep rule that names a
    bandit test (``metadata.bandit``) reported at the same line joins that finding."""
    from common.security.models import SEVERITY_RANK

    index = {(f.path, f.line, f.rule): f for f in bandit}
    merged = list(bandit)
    for s in semgrep:
        same = next(
            (index[(s.path, s.line, b)] for b in s.same_as if (s.path, s.line, b) in index),
            None,
        )
        if same is None:
            merged.append(s)
            continue
        same.also.append(("semgrep", s.rule))
        if SEVERITY_RANK[s.severity] > SEVERITY_RANK[same.severity]:
            same.severity = s.severity
        if s.cwe and not same.cwe:
            same.cwe = s.cwe
    return merged


def _child_main(argv: list[str]) -> int:
    # `python -m common.security.sast bandit ROOT` with the JSON list of paths on stdin.
    if len(argv) != 2 or argv[0] != "bandit":
        print("usage: python -m common.security.sast bandit ROOT < paths.json", file=sys.stderr)
        return 2
    root = argv[1]
    paths = json.loads(sys.stdin.read())
    files = {}
    for rel in paths:
        with open(os.path.join(root, rel), encoding="utf-8") as fh:
            files[rel] = fh.read()
    json.dump(_encode_bandit(bandit_scan_files(files, root=root)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
