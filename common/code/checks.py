"""Checks that run on code before anyone sees it: does it parse, does it lint.

Each check returns a :class:`CheckResult`; a failed one carries a message short and
precise enough to hand back to the model ("line 3: expected ':'").
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from common.code.languages import parser_for

# Lint only what breaks code (flake8's "stop the build" set: syntax errors, undefined
# names, invalid comparisons): a model is not asked to fix style, only bugs.
RUFF_RULES = "E9,F63,F7,F82"
LINT_TIMEOUT_S = 20


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str = ""
    line: int | None = None
    # False when the check could not run here (no grammar, no linter): not a failure.
    ran: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "ran": self.ran,
            **({"message": self.message} if self.message else {}),
            **({"line": self.line} if self.line is not None else {}),
        }


def check_parse(code: str, language: str | None) -> CheckResult:
    """Does ``code`` parse as ``language``? Python by ``ast``, others by tree-sitter."""
    if language == "python":
        try:
            ast.parse(code)
        except SyntaxError as exc:
            where = f"line {exc.lineno}: " if exc.lineno else ""
            return CheckResult("parse", False, f"{where}{exc.msg}", exc.lineno)
        except ValueError as exc:  # e.g. NUL bytes
            return CheckResult("parse", False, str(exc))
        return CheckResult("parse", True)
    if language == "dockerfile":
        return _check_dockerfile(code)
    parser = parser_for(language) if language else None
    if parser is None:
        return CheckResult(
            "parse", True, f"no parser for {language or 'unknown language'}", ran=False
        )
    tree = parser.parse(code.encode())
    if not tree.root_node.has_error:
        return CheckResult("parse", True)
    node = _first_error(tree.root_node)
    line = node.start_point[0] + 1 if node is not None else None
    kind = "missing " + node.type if node is not None and node.is_missing else "syntax error"
    snippet = ""
    if node is not None:
        text = code.encode()[node.start_byte : node.end_byte].decode(errors="replace")
        snippet = f" near {text[:40]!r}" if text.strip() else ""
    return CheckResult("parse", False, f"line {line}: {kind}{snippet}", line)


_DOCKER_INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def _check_dockerfile(code: str) -> CheckResult:
    from dockerfile_parse import DockerfileParser

    # A file object, never a path: given none, the parser reads and writes ./Dockerfile.
    parser = DockerfileParser(fileobj=io.BytesIO(code.encode()), env_replace=False)
    instructions = [i for i in parser.structure if i["instruction"] not in ("COMMENT",)]
    if not instructions:
        return CheckResult("parse", False, "no instructions")
    for item in instructions:
        if item["instruction"] not in _DOCKER_INSTRUCTIONS:
            line = item["startline"] + 1
            return CheckResult(
                "parse", False, f"line {line}: unknown instruction {item['instruction']}", line
            )
    first = instructions[0]["instruction"]
    if first not in ("FROM", "ARG"):
        return CheckResult("parse", False, f"line 1: a Dockerfile starts with FROM, not {first}", 1)
    return CheckResult("parse", True)


def _first_error(node: Any) -> Any | None:
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            found = _first_error(child)
            if found is not None:
                return found
    return None


def _ruff_binary() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        return None


def check_lint(code: str, language: str | None) -> CheckResult:
    """Lint Python with ruff (bug rules only); other languages: not run."""
    if language != "python":
        return CheckResult(
            "lint", True, f"no linter for {language or 'unknown language'}", ran=False
        )
    binary = _ruff_binary()
    if binary is None:
        return CheckResult("lint", True, "ruff is not installed", ran=False)
    try:
        result = subprocess.run(
            [
                binary,
                "check",
                "--isolated",
                "--select",
                RUFF_RULES,
                "--output-format",
                "json",
                "--stdin-filename",
                "answer.py",
                "-",
            ],
            input=code,
            capture_output=True,
            text=True,
            timeout=LINT_TIMEOUT_S,
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult("lint", True, f"ruff did not run: {type(exc).__name__}", ran=False)
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return CheckResult("lint", True, "ruff gave no report", ran=False)
    if not findings:
        return CheckResult("lint", True)
    first = findings[0]
    line = (first.get("location") or {}).get("row")
    messages = [
        f"line {(f.get('location') or {}).get('row')}: {f.get('code')} {f.get('message')}"
        for f in findings[:5]
    ]
    return CheckResult("lint", False, "; ".join(messages), line)


def check_code(code: str, language: str | None) -> list[CheckResult]:
    """Parse, then lint when it parses.

    Results are remembered by content: the Lead architect re-checks every file a
    worker has just checked, and each round re-checks the files that did not change;
    a lint is a subprocess, and the same text always gets the same answer.
    """
    return list(_check_code(code, language))


@lru_cache(maxsize=512)
def _check_code(code: str, language: str | None) -> tuple[CheckResult, ...]:
    parsed = check_parse(code, language)
    if not parsed.ok:
        return (parsed,)
    return (parsed, check_lint(code, language))
