"""Test runners, linters and syntax checks, each run inside a :class:`Sandbox`.

Python: pytest (per-test outcomes from its JUnit XML), coverage.py, ruff.
JavaScript: ``node --check`` and ``node --test`` (outcomes from a small reporter of
ours), only when ``node`` is installed: otherwise the report says ``ran=False``,
which is not a failure. Other languages get a tree-sitter parse check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from common.code.checks import CheckResult, check_parse
from common.code.languages import language_for_path
from common.errors import InvalidInput
from common.sandbox.sandbox import Limits, RunResult, Sandbox

MESSAGE_CAP = 4000
JS_SUFFIXES = (".js", ".mjs", ".cjs")
# Coverage is of the code under test: test files and conftest.py are left out.
TEST_FILE_PATTERNS = ("**/test_*.py", "**/*_test.py", "**/tests/**", "**/conftest.py")


@dataclass
class TestCase:
    __test__ = False  # a result, not something for pytest to collect

    name: str  # pytest node id, or node:test name ("file > suite > test")
    outcome: str  # "passed" | "failed" | "error" | "skipped"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome, "message": self.message}


@dataclass
class TestReport:
    __test__ = False

    ran: bool  # False when the runner is not available here: not a failure
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cases: list[TestCase] = field(default_factory=list)
    coverage: dict[str, float] | None = None  # per source file, line coverage percent
    coverage_total: float | None = None
    missing_lines: dict[str, list[int]] | None = None
    output: str = ""  # the runner's capped output, for the model to read
    duration_ms: int = 0
    isolation: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Ran, collected at least one test, and none failed or errored."""
        return (
            self.ran
            and not self.timed_out
            and self.failed == 0
            and self.errors == 0
            and bool(self.cases)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "ok": self.ok,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "cases": [c.to_dict() for c in self.cases],
            "coverage": self.coverage,
            "coverage_total": self.coverage_total,
            "missing_lines": self.missing_lines,
            "output": self.output,
            "duration_ms": self.duration_ms,
            "isolation": self.isolation,
            "timed_out": self.timed_out,
        }


def count_cases(report: TestReport) -> TestReport:
    for case in report.cases:
        if case.outcome == "passed":
            report.passed += 1
        elif case.outcome == "failed":
            report.failed += 1
        elif case.outcome == "error":
            report.errors += 1
        else:
            report.skipped += 1
    return report


def run_output(root: Path, *runs: RunResult) -> str:
    parts = []
    for run in runs:
        parts += [text for text in (run.stdout, run.stderr) if text.strip()]
    return _tidy("\n".join(parts), str(root))


def check_selection(tests: list[str] | None) -> list[str]:
    """Test selections as arguments: relative paths or node ids, never options."""
    chosen = list(tests or [])
    for item in chosen:
        path = item.split("::", 1)[0]
        if item.startswith("-") or PurePosixPath(path).is_absolute() or ".." in path.split("/"):
            raise InvalidInput(f"test selection {item!r} must be a relative path or node id")
    return chosen


# -- Python ------------------------------------------------------------------------


def run_python_tests(
    files: dict[str, str],
    *,
    tests: list[str] | None = None,
    coverage: bool = False,
    limits: Limits = Limits(),
) -> TestReport:
    """Run pytest on ``files`` in a fresh sandbox.

    Parameters
    ----------
    files:
        Relative path -> text: the code and its tests.
    tests:
        Test files or node ids to run; None: pytest's discovery in the sandbox root.
    coverage:
        Measure line coverage of the non-test ``.py`` files with coverage.py.
    limits:
        The sandbox's limits; the wall limit covers the pytest run.

    Returns
    -------
    TestReport
        Per-test outcomes (pytest node ids), counts, capped output and, when asked,
        coverage per source file with its missing lines.

    Raises
    ------
    InvalidInput
        A file path or test selection leaves the sandbox.
    """
    selection = check_selection(tests)
    with Sandbox(files, limits=limits) as box:
        return pytest_in(box, selection, coverage=coverage)


def pytest_in(box: Sandbox, selection: list[str], *, coverage: bool = False) -> TestReport:
    """Run pytest in an open sandbox's root (see :func:`run_python_tests`).

    ``selection`` must already be checked (:func:`check_selection`).
    """
    limits = box.limits
    pytest_args = ["-m", "pytest", *pytest_arguments(box.reports / "junit.xml", selection)]
    data_file = box.reports / "coverage.data"
    if coverage:
        argv = [
            sys.executable,
            "-m",
            "coverage",
            "run",
            f"--data-file={data_file}",
            "--source=.",
            f"--omit={','.join(TEST_FILE_PATTERNS)}",
            *pytest_args,
        ]
    else:
        argv = [sys.executable, *pytest_args]
    run = box.run(argv)
    report = TestReport(
        ran=True,
        cases=junit_cases(box.read_report("junit.xml"), str(box.root)),
        output=run_output(box.root, run),
        duration_ms=run.duration_ms,
        isolation=run.isolation,
        timed_out=run.timed_out,
    )
    if coverage and not run.timed_out:
        json_run = box.run(
            [
                sys.executable,
                "-m",
                "coverage",
                "json",
                f"--data-file={data_file}",
                "-o",
                str(box.reports / "coverage.json"),
            ],
            timeout_s=min(limits.wall_s, 30),
        )
        report.duration_ms += json_run.duration_ms
        _add_coverage(report, box.read_report("coverage.json"), str(box.root))
    return count_cases(report)


def pytest_arguments(junit: Path, selection: list[str]) -> list[str]:
    """pytest's options (after ``-m pytest``) for a sandboxed run: JUnit XML to
    ``junit``, no cache written, every test file collected even if one is broken."""
    return [
        "-p",
        "no:cacheprovider",
        "-q",
        "--color=no",
        # One broken test file must not hide how the others fare.
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        # xunit1 keeps each case's file, from which the node id is rebuilt.
        "-o",
        "junit_family=xunit1",
        *selection,
    ]


def junit_cases(xml_text: str | None, root: str) -> list[TestCase]:
    """Per-test outcomes from pytest's JUnit XML (xunit1), named by node id, their
    messages' paths relative to ``root``; none when the XML is missing or broken."""
    if not xml_text:
        return []
    try:
        tree = ET.fromstring(xml_text)
    except ET.ParseError:
        return []
    cases = []
    for element in tree.iter("testcase"):
        outcome, message = "passed", ""
        for child in element:
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
            if kind is None:
                continue
            outcome = kind
            text = (child.text or "").strip()
            message = text or child.get("message", "")
            break
        cases.append(TestCase(_node_id(element), outcome, _tidy(message, root)[-MESSAGE_CAP:]))
    return cases


def _node_id(case: ET.Element) -> str:
    name = case.get("name", "")
    file = case.get("file")
    classname = case.get("classname", "")
    module = (file or "").removesuffix(".py").replace("/", ".")
    if not classname and (not file or name == module):
        # A collection error: the module is the case ("tests.test_x"), named by its path.
        return file or name.replace(".", "/") + ".py"
    if not file:
        return f"{classname}::{name}" if classname else name
    inner = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    parts = [file, *(inner.split(".") if inner else []), name]
    return "::".join(parts)


def _add_coverage(report: TestReport, json_text: str | None, root: str) -> None:
    if not json_text:
        return
    try:
        data = json.loads(json_text)
        measured = data["files"]
    except (ValueError, KeyError, TypeError):
        return
    per_file: dict[str, float] = {}
    missing: dict[str, list[int]] = {}
    statements = covered = 0
    for path, info in measured.items():
        rel = _relative(path, root)
        summary = info.get("summary", {})
        n, hit = int(summary.get("num_statements", 0)), int(summary.get("covered_lines", 0))
        statements, covered = statements + n, covered + hit
        per_file[rel] = round(100.0 * hit / n, 2) if n else 100.0
        missing[rel] = sorted(int(line) for line in info.get("missing_lines", []))
    report.coverage = per_file
    report.missing_lines = missing
    report.coverage_total = round(100.0 * covered / statements, 2) if statements else 100.0


def run_ruff(
    files: dict[str, str],
    *,
    select: str | None = None,
    limits: Limits = Limits(),
) -> dict[str, list[dict[str, Any]]]:
    """Ruff's findings per Python file (its JSON output), run in a sandbox.

    ``select`` is a ruff rule selection ("E9,F63"); None: ruff's defaults and any
    configuration among ``files``. A file without findings maps to an empty list;
    an empty mapping means ruff is not installed.
    """
    from common.code.checks import _ruff_binary

    binary = _ruff_binary()
    if binary is None:
        return {}
    python = [p for p in files if p.endswith((".py", ".pyi"))]
    findings: dict[str, list[dict[str, Any]]] = {p: [] for p in python}
    if not python:
        return findings
    argv = [binary, "check", "--no-cache", "--output-format=json", "--exit-zero"]
    if select:
        argv.append(f"--select={select}")
    with Sandbox(files, limits=limits) as box:
        run = box.run([*argv, "--", *python])
        root = str(box.root)
    try:
        items = json.loads(run.stdout or "[]")
    except ValueError:
        return findings
    for item in items if isinstance(items, list) else []:
        rel = _relative(str(item.get("filename", "")), root)
        findings.setdefault(rel, []).append(
            {
                "code": item.get("code"),
                "message": item.get("message"),
                "line": (item.get("location") or {}).get("row"),
                "column": (item.get("location") or {}).get("column"),
                "fixable": item.get("fix") is not None,
            }
        )
    return findings


# -- JavaScript --------------------------------------------------------------------

# node:test reporter: one JSON line per finished test, with its file and nesting.
_NODE_REPORTER = """\
export default async function* aoReporter(source) {
  for await (const event of source) {
    const d = event.data;
    if (event.type === 'test:stderr') {
      // A test file that fails to load tells why only on its stderr.
      yield JSON.stringify({ event: 'stderr', file: d.file ?? null, message: d.message }) + '\\n';
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const error = d.details && d.details.error;
    let message = '';
    if (error) {
      const cause = error.cause ?? error;
      message = String((cause && (cause.stack || cause.message)) || cause);
    }
    yield JSON.stringify({
      event: event.type,
      name: d.name,
      nesting: d.nesting,
      file: d.file ?? null,
      skip: d.skip !== undefined && d.skip !== false,
      todo: d.todo !== undefined && d.todo !== false,
      failureType: (error && error.failureType) || null,
      message: message.slice(0, 8000),
    }) + '\\n';
  }
}
"""

# Failures of the test's own code or time; anything else (hooks, a file that did not
# load, a cancelled parent) is an error around the test.
_NODE_FAILED = {"testCodeFailure", "testTimeoutFailure"}


def node_available() -> bool:
    return shutil.which("node") is not None


@cache
def _node_version() -> tuple[int, int]:
    node = shutil.which("node")
    if node is None:
        return 0, 0
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
        major, minor = out.strip().lstrip("v").split(".")[:2]
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0, 0


def run_node_tests(
    files: dict[str, str],
    *,
    tests: list[str] | None = None,
    limits: Limits = Limits(),
) -> TestReport:
    """Run ``node --test`` on ``files`` in a fresh sandbox.

    Parameters
    ----------
    files:
        Relative path -> text: the code and its tests (.js/.mjs/.cjs).
    tests:
        Test files to run; None: node's own discovery (``*.test.js``, ``test/`` ...).
    limits:
        The sandbox's limits.

    Returns
    -------
    TestReport
        ``ran=False`` when node is not installed; otherwise per-test outcomes named
        ``"file > suite > test"`` and node's spec output. No coverage.
    """
    selection = check_selection(tests)
    if not node_available():
        return TestReport(ran=False, output="node is not installed on this server")
    with Sandbox(files, limits=limits) as box:
        return node_tests_in(box, selection)


def node_tests_in(box: Sandbox, selection: list[str]) -> TestReport:
    """Run ``node --test`` in an open sandbox's root (see :func:`run_node_tests`).

    ``selection`` must already be checked (:func:`check_selection`); node must be
    installed.
    """
    reporter = box.add_helper("ao-reporter.mjs", _NODE_REPORTER)
    destination = box.reports / "node-tests.jsonl"
    # node runs test files in parallel, one process of ~10 threads each, by the
    # number of cores: two at a time stays well within the process limit.
    concurrency = ["--test-concurrency=2"] if _node_version() >= (20, 10) else []
    run = box.run(
        [
            "node",
            "--test",
            *concurrency,
            f"--test-reporter={reporter}",
            f"--test-reporter-destination={destination}",
            "--test-reporter=spec",
            "--test-reporter-destination=stdout",
            *selection,
        ]
    )
    lines = box.read_report("node-tests.jsonl") or ""
    root = str(box.root)
    output = run_output(box.root, run)
    report = TestReport(
        ran=True,
        cases=_node_cases(lines, root),
        output=output,
        duration_ms=run.duration_ms,
        isolation=run.isolation,
        timed_out=run.timed_out,
    )
    return count_cases(report)


def _node_cases(lines: str, root: str) -> list[TestCase]:
    # Events arrive as tests finish, children before their parent: hold each level's
    # finished tests until their parent names them.
    pending: dict[int, list[TestCase]] = {}
    stderr: dict[str, str] = {}
    for line in lines.splitlines():
        try:
            event = json.loads(line)
            nesting = int(event.get("nesting", 0))
        except (ValueError, TypeError, AttributeError):
            continue
        file = str(event.get("file") or "")
        if event.get("event") == "stderr":
            stderr[file] = (stderr.get(file, "") + str(event.get("message", "")))[-MESSAGE_CAP:]
            continue
        name = str(event.get("name", ""))
        message = str(event.get("message", ""))
        rel = _relative(file, root)
        if file and name == file:
            # The file itself, as one test: it did not load (or exited badly).
            outcome = "passed" if event.get("event") == "test:pass" else "error"
            details = stderr.get(file, "").strip() or message
            pending.setdefault(0, []).append(TestCase(rel, outcome, details))
            continue
        children = pending.pop(nesting + 1, [])
        cases = [TestCase(f"{name} > {c.name}", c.outcome, c.message) for c in children]
        own_failure = event.get("event") == "test:fail" and (
            event.get("failureType") != "subtestsFailed"
        )
        if not children or own_failure:
            cases.append(TestCase(name, _node_outcome(event), message))
        if nesting == 0 and rel:
            cases = [TestCase(f"{rel} > {c.name}", c.outcome, c.message) for c in cases]
        pending.setdefault(nesting, []).extend(cases)
    found = [c for level in sorted(pending) for c in pending[level]]
    return [TestCase(c.name, c.outcome, _tidy(c.message, root)[-MESSAGE_CAP:]) for c in found]


def _relative(path: str, root: str) -> str:
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


def _tidy(text: str, root: str) -> str:
    """Paths relative to the sandbox root: shorter, and what the model knows them as."""
    return text.replace(f"file://{root}/", "").replace(root + "/", "")


def _node_outcome(event: dict[str, Any]) -> str:
    if event.get("skip") or event.get("todo"):
        return "skipped"
    if event.get("event") == "test:pass":
        return "passed"
    return "failed" if event.get("failureType") in _NODE_FAILED else "error"


def check_js_syntax(
    files: dict[str, str],
    *,
    limits: Limits = Limits(wall_s=20),
) -> dict[str, CheckResult]:
    """``node --check`` of each .js/.mjs/.cjs file among ``files``, in one sandbox.

    Returns a :class:`CheckResult` per JavaScript file ("line 3: SyntaxError: ...");
    ``ran=False`` for each when node is not installed.
    """
    scripts = [p for p in files if p.endswith(JS_SUFFIXES)]
    if not node_available():
        return {p: CheckResult("syntax", True, "node is not installed", ran=False) for p in scripts}
    results: dict[str, CheckResult] = {}
    if not scripts:
        return results
    with Sandbox(files, limits=limits) as box:
        for path in scripts:
            run = box.run(["node", "--check", "--", path])
            results[path] = _node_check_result(run, path)
    return results


def _node_check_result(run: RunResult, path: str) -> CheckResult:
    if run.ok:
        return CheckResult("syntax", True)
    if run.timed_out:
        return CheckResult("syntax", False, "node --check did not finish in time")
    text = run.stderr or run.stdout
    lines = text.splitlines()
    line: int | None = None
    if lines and ":" in lines[0]:
        tail = lines[0].rsplit(":", 1)[1].strip()
        line = int(tail) if tail.isdigit() else None
    error = next((x.strip() for x in lines if "Error" in x.split(":", 1)[0]), "")
    message = error or (lines[-1].strip() if lines else "node --check failed")
    where = f"line {line}: " if line is not None else ""
    return CheckResult("syntax", False, f"{where}{message}"[:MESSAGE_CAP], line)


def check_syntax(files: dict[str, str]) -> dict[str, CheckResult]:
    """A parse check of every file whose language we know.

    JavaScript through ``node --check`` when node is installed (it knows the language
    best); Python through ``ast``; everything else (TypeScript, Go, ...) through its
    tree-sitter grammar. Files of unknown languages are left out.
    """
    results: dict[str, CheckResult] = {}
    scripts = {p: c for p, c in files.items() if p.endswith(JS_SUFFIXES)}
    if scripts and node_available():
        results.update(check_js_syntax(scripts))
    for path, code in files.items():
        if path in results:
            continue
        language = language_for_path(path)
        if language is None:
            continue
        parsed = check_parse(code, language)
        results[path] = CheckResult("syntax", parsed.ok, parsed.message, parsed.line, parsed.ran)
    return results
