"""/api/analyze: measure the code, then have the model review it, and keep the report.

The deterministic part comes first and never depends on the model: per file, radon
(cyclomatic complexity per function, maintainability index, raw line counts), ruff
and bandit for Python; for other languages a tree-sitter count of lines, functions
and branches per function. The model is then given a summary of those measurements
and the code that matters most (bounded to its window), and answers with a summary
and recommendations. Both are merged into one prioritised list (severity, then the
complexity of the function a finding is in) and stored as a report in MongoDB.

A small model invents line numbers: the code it is shown is numbered, and a line it
names outside what it was shown is kept as a finding without a line.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from common.actions.base import per_file
from common.actions.inputs import CodeInput, Workspace, is_test_path, job_input, load_workspace
from common.code.languages import language_for_path
from common.logs import get_logger
from common.models.base import ModelClient, Usage

if TYPE_CHECKING:
    from common.agents.universal import Finding
    from common.jobs import JobContext

log = get_logger("actions.analyze")

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
FindingSource = Literal[
    "model", "ruff", "bandit", "secrets", "complexity", "maintainability", "parse"
]

# Bounds that keep one analysis inside a Lambda's 29 s and a report inside a Mongo
# document (16 MB): files past them are counted as skipped, not read.
MAX_ANALYZED_FILES = 500
MAX_ANALYZED_CHARS = 5_000_000
MAX_FUNCTIONS_LISTED = 20
MAX_FINDINGS = 500
RUFF_TIMEOUT_S = 20.0
# Ruff rules beyond the bug-only set the answer checks use: style, bugbear, pyupgrade,
# simplifications. C90 (mccabe) is left out: radon measures the same per function.
RUFF_SELECT = "E,F,W,B,UP,SIM,C4"
# Line length is a formatter's business, not a finding.
RUFF_IGNORE = "E501"
# Radon's rank thresholds: A 1-5, B 6-10, C 11-20, D 21-30, E 31-40, F 41+.
COMPLEX_FROM = 11
# What the model is shown: bounded by its window, whatever that is.
MIN_MODEL_CODE_CHARS = 2_000
MAX_MODEL_CODE_CHARS = 24_000
CHARS_PER_TOKEN = 3
# Window kept free for the system prompt, the measurements and the answer.
MODEL_RESERVED_TOKENS = 2_000
MODEL_WORST_FUNCTIONS = 8
MODEL_TOP_FINDINGS = 12
# Languages with functions to measure; the rest (JSON, YAML, Markdown...) get line
# counts and the secret scan only.
CODE_LANGUAGES = frozenset(
    "python javascript typescript tsx go rust java c cpp csharp ruby php bash kotlin".split()
)


# -- output -------------------------------------------------------------------


class FunctionMetrics(BaseModel):
    name: str
    line: int
    end_line: int
    complexity: int = Field(description="Cyclomatic complexity: 1 + branches.")
    rank: str = Field(description="Radon's rank: A (1-5) to F (41+).")


class FileMetrics(BaseModel):
    path: str
    language: str | None
    test: bool = Field(False, description="A test file (tests/, test_*.py, *.test.js...).")
    parsed: bool = True
    lines: int
    sloc: int = Field(description="Lines with code (not blank, not only a comment).")
    comments: int
    function_count: int
    complexity: int = Field(description="Sum of the functions' complexities.")
    max_complexity: int
    maintainability: float | None = Field(
        None, description="Maintainability index 0-100 (Python, radon)."
    )
    maintainability_rank: str | None = None
    functions: list[FunctionMetrics] = Field(
        [], description=f"The most complex functions first, at most {MAX_FUNCTIONS_LISTED}."
    )


class WorstFunction(FunctionMetrics):
    path: str


class MetricsSummary(BaseModel):
    files: int
    source_files: int
    test_files: int
    skipped_files: int = Field(0, description="Files past the size bounds, not analyzed.")
    lines: int
    sloc: int
    functions: int
    average_complexity: float
    max_complexity: int
    worst_functions: list[WorstFunction]
    lowest_maintainability: float | None = None
    findings: dict[str, int] = Field(description="Findings by severity.")


class AnalysisFinding(BaseModel):
    severity: Severity
    source: FindingSource
    rule: str | None = None
    path: str | None = None
    line: int | None = None
    title: str
    recommendation: str
    test: bool = Field(False, description="In a test file.")
    complexity: int | None = Field(
        None, description="Complexity of the function the finding is in (the tie-break)."
    )
    cwe: int | None = None


class ToolRun(BaseModel):
    name: str
    ran: bool
    findings: int = 0
    message: str = ""


class AnalyzeOutput(BaseModel):
    report_id: str
    report_url: str
    kind: Literal["analysis"] = "analysis"
    created_at: datetime
    request_digest: str
    language: str | None
    primary: str
    summary: str | None = Field(description="The model's summary (null when it gave none).")
    findings: list[AnalysisFinding] = Field(description="Most important first.")
    findings_total: int = Field(description=f"Findings before the list was cut at {MAX_FINDINGS}.")
    metrics: MetricsSummary
    files: list[FileMetrics]
    checks: list[ToolRun] = Field(description="The deterministic tools and whether they ran.")
    reviewed: list[str] = Field(description="Files the model was shown.")
    model: str
    usage: Usage
    attempts: int
    cached: bool = False
    duration_ms: int
    model_error: str | None = None


# -- Python: radon --------------------------------------------------------------


def rank_of(complexity: int) -> str:
    from radon.complexity import cc_rank

    return str(cc_rank(complexity))


def python_metrics(path: str, code: str, *, test: bool = False) -> FileMetrics:
    """Radon's measurements of one Python file; a file that does not parse gets line counts."""
    from radon.complexity import cc_visit
    from radon.metrics import mi_rank, mi_visit
    from radon.raw import analyze as raw_analyze

    lines = _line_count(code)
    try:
        raw = raw_analyze(code)
        sloc, comments = int(raw.sloc), int(raw.comments)
    except (SyntaxError, ValueError, TypeError):
        # radon's tokenizer gives up on some broken files: count what we can.
        sloc, comments = _plain_sloc(code), 0
    try:
        blocks = cc_visit(code)
        maintainability = float(mi_visit(code, multi=True))
    except (SyntaxError, ValueError, TypeError):
        return _file_metrics(path, "python", test, False, lines, sloc, comments, [])
    functions = [
        FunctionMetrics(
            name=str(block.fullname),
            line=int(block.lineno),
            end_line=int(block.endline),
            complexity=int(block.complexity),
            rank=rank_of(int(block.complexity)),
        )
        for block in blocks
        # Classes are listed too, with their methods' sum: the methods are what to fix.
        if not hasattr(block, "methods")
    ]
    metrics = _file_metrics(path, "python", test, True, lines, sloc, comments, functions)
    metrics.maintainability = round(maintainability, 1)
    metrics.maintainability_rank = str(mi_rank(maintainability))
    return metrics


# -- other languages: tree-sitter ----------------------------------------------


@dataclass(frozen=True)
class NodeTable:
    """Which tree-sitter node types are functions and which are branches, per grammar."""

    functions: frozenset[str]
    branches: frozenset[str]
    logical: frozenset[str] = frozenset({"&&", "||"})
    # Types whose parent makes an operator token a branch (`a && b` is, `T&&` is not).
    logical_parents: frozenset[str] = frozenset({"binary_expression"})


def _types(names: str) -> frozenset[str]:
    return frozenset(names.split())


_JS_TABLE = NodeTable(
    functions=_types(
        "function_declaration generator_function_declaration function_expression function"
        " generator_function arrow_function method_definition"
    ),
    branches=_types(
        "if_statement for_statement for_in_statement while_statement do_statement"
        " switch_case catch_clause ternary_expression"
    ),
    logical=_types("&& || ??"),
)

NODE_TABLES: dict[str, NodeTable] = {
    "javascript": _JS_TABLE,
    "typescript": _JS_TABLE,
    "tsx": _JS_TABLE,
    "go": NodeTable(
        functions=_types("function_declaration method_declaration func_literal"),
        branches=_types("if_statement for_statement expression_case type_case communication_case"),
    ),
    "java": NodeTable(
        functions=_types("method_declaration constructor_declaration lambda_expression"),
        branches=_types(
            "if_statement for_statement enhanced_for_statement while_statement do_statement"
            " switch_label catch_clause ternary_expression"
        ),
    ),
}

# Any other grammar: the usual names across tree-sitter grammars (C, C++, C#, Rust,
# Ruby, PHP, Kotlin, Bash). An estimate, like every cyclomatic count of these here.
GENERIC_TABLE = NodeTable(
    functions=_types(
        "function_definition function_declaration function_item method_declaration"
        " method_definition constructor_declaration local_function_statement method"
        " singleton_method lambda_expression lambda_literal anonymous_function"
        " anonymous_function_creation_expression arrow_function closure_expression"
        " function_expression func_literal"
    ),
    branches=_types(
        "if_statement if_expression if elsif unless if_modifier unless_modifier"
        " else_if_clause elif_clause"
        " for_statement for_expression for_in_statement for_range_loop foreach_statement for"
        " while_statement while_expression while until while_modifier until_modifier"
        " loop_expression do_statement"
        " case_statement case_clause switch_case switch_section switch_label case_item when"
        " when_entry match_arm"
        " catch_clause rescue conditional_expression ternary_expression conditional"
    ),
    logical=_types("&& || ?? and or"),
    logical_parents=_types(
        "binary_expression binary boolean_operator logical_expression conjunction_expression"
        " disjunction_expression list"
    ),
)

_CLASS_LIKE = _types(
    "class_declaration class_definition class_specifier class interface_declaration"
    " object_declaration impl_item module"
)
# Parents that name an anonymous function: `const f = () => ...`, `{f: function () {}}`.
_NAMING_PARENTS = _types(
    "variable_declarator assignment_expression pair field_definition short_var_declaration"
)


def table_for(language: str) -> NodeTable:
    return NODE_TABLES.get(language, GENERIC_TABLE)


def tree_sitter_metrics(
    path: str, code: str, language: str, *, test: bool = False
) -> FileMetrics | None:
    """Lines, functions and a cyclomatic estimate per function; None without a grammar.

    A function's complexity is 1 plus its branching nodes (if, loops, case labels,
    catch, the conditional operator, ``&&``/``||``), not counting those of the
    functions nested in it, which are measured on their own (as ESLint does).
    """
    from common.code.languages import parser_for

    parser = parser_for(language)
    if parser is None:
        return None
    source = code.encode()
    tree = parser.parse(source)
    table = table_for(language)
    found: list[_Counting] = []
    comment_rows: set[int] = set()
    stack: list[tuple[Any, _Counting | None]] = [(tree.root_node, None)]
    while stack:
        node, owner = stack.pop()
        if "comment" in node.type:
            comment_rows.update(range(node.start_point[0], node.end_point[0] + 1))
        if node.is_named and node.type in table.functions:
            owner = _Counting(
                name=_function_name(node, source),
                line=node.start_point[0] + 1,
                end_line=node.end_point[0] + 1,
            )
            found.append(owner)
        elif owner is not None and _is_branch(node, table):
            owner.complexity += 1
        stack.extend((child, owner) for child in reversed(node.children))
    lines = _line_count(code)
    code_rows = {i for i, text in enumerate(code.splitlines()) if text.strip()}
    functions = [
        FunctionMetrics(
            name=f.name,
            line=f.line,
            end_line=f.end_line,
            complexity=f.complexity,
            rank=rank_of(f.complexity),
        )
        for f in found
    ]
    return _file_metrics(
        path,
        language,
        test,
        not tree.root_node.has_error,
        lines,
        len(code_rows - comment_rows),
        len(comment_rows & code_rows),
        functions,
    )


@dataclass
class _Counting:
    name: str
    line: int
    end_line: int
    complexity: int = 1


def _is_branch(node: Any, table: NodeTable) -> bool:
    if not node.is_named:
        parent = node.parent
        return (
            node.type in table.logical
            and parent is not None
            and parent.type in table.logical_parents
        )
    if node.type not in table.branches:
        return False
    # The default of a switch is not a decision: `default:`, `else ->`, Rust's `_ =>`.
    first = node.child(0) if node.child_count else None
    if first is None:
        return True
    if first.type in ("default", "else"):
        return False
    return not (first.type == "match_pattern" and first.text == b"_")


def _function_name(node: Any, source: bytes) -> str:
    name = node.child_by_field_name("name")
    if name is None:
        # C and C++: the name sits inside nested declarators.
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.child_by_field_name("declarator"):
            declarator = declarator.child_by_field_name("declarator")
        name = declarator
    parent = node.parent
    if parent is not None and parent.type == "expression_list":
        parent = parent.parent  # Go: `f, g := func() {...}, ...`
    if name is None and parent is not None and parent.type in _NAMING_PARENTS:
        for field_name in ("name", "left", "key", "property"):
            name = parent.child_by_field_name(field_name)
            if name is not None:
                break
    text = _text(name, source) if name is not None else "<anonymous>"
    owner = _receiver_type(node, source) or _enclosing_class(node, source)
    return f"{owner}.{text}" if owner else text


def _receiver_type(node: Any, source: bytes) -> str | None:
    """Go: the type a method is declared on, ``func (s *Server) Run()`` -> ``Server``."""
    receiver = node.child_by_field_name("receiver")
    stack = [receiver] if receiver is not None else []
    while stack:
        current = stack.pop()
        if current.type == "type_identifier":
            return _text(current, source)
        stack.extend(reversed(current.children))
    return None


def _enclosing_class(node: Any, source: bytes) -> str | None:
    parent = node.parent
    while parent is not None:
        if parent.type in _CLASS_LIKE:
            named = parent.child_by_field_name("name") or parent.child_by_field_name("type")
            return _text(named, source) if named is not None else None
        parent = parent.parent
    return None


def _text(node: Any, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode(errors="replace")[:200]


# -- per file -----------------------------------------------------------------


def _line_count(code: str) -> int:
    return len(code.splitlines())


def _plain_sloc(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip())


def _file_metrics(
    path: str,
    language: str | None,
    test: bool,
    parsed: bool,
    lines: int,
    sloc: int,
    comments: int,
    functions: list[FunctionMetrics],
) -> FileMetrics:
    ordered = sorted(functions, key=lambda f: (-f.complexity, f.line))
    return FileMetrics(
        path=path,
        language=language,
        test=test,
        parsed=parsed,
        lines=lines,
        sloc=sloc,
        comments=comments,
        function_count=len(functions),
        complexity=sum(f.complexity for f in functions),
        max_complexity=max((f.complexity for f in functions), default=0),
        functions=ordered[:MAX_FUNCTIONS_LISTED],
    )


def measure_file(path: str, code: str, language: str | None) -> FileMetrics:
    """The metrics of one file in ``language``: radon for Python, tree-sitter for others."""
    test = is_test_path(path)
    if language == "python":
        return python_metrics(path, code, test=test)
    if language in CODE_LANGUAGES:
        measured = tree_sitter_metrics(path, code, language, test=test)
        if measured is not None:
            return measured
    return _file_metrics(path, language, test, True, _line_count(code), _plain_sloc(code), 0, [])


def complexity_findings(metrics: FileMetrics) -> list[AnalysisFinding]:
    """A finding for each function of rank C or worse, and for a hard-to-maintain file."""
    findings = []
    for fn in metrics.functions:
        if fn.complexity < COMPLEX_FROM:
            continue
        severity: Severity = "high" if fn.rank == "F" else "medium" if fn.rank in "DE" else "low"
        findings.append(
            AnalysisFinding(
                severity=severity,
                source="complexity",
                rule=f"complexity-{fn.rank}",
                path=metrics.path,
                line=fn.line,
                title=f"{fn.name} has cyclomatic complexity {fn.complexity} (rank {fn.rank})",
                recommendation="split it into smaller functions, each with one job; replace"
                " nested conditions with early returns or a lookup table; test each branch.",
                test=metrics.test,
                complexity=fn.complexity,
            )
        )
    if metrics.maintainability_rank in ("B", "C"):
        findings.append(
            AnalysisFinding(
                severity="medium" if metrics.maintainability_rank == "C" else "low",
                source="maintainability",
                rule=f"maintainability-{metrics.maintainability_rank}",
                path=metrics.path,
                title=f"the file is hard to maintain (maintainability index"
                f" {metrics.maintainability}, rank {metrics.maintainability_rank})",
                recommendation="split the file by responsibility and simplify its most"
                " complex functions first.",
                test=metrics.test,
            )
        )
    return findings


def parse_finding(path: str, code: str, language: str | None, test: bool) -> AnalysisFinding | None:
    """A finding when ``code`` does not parse as ``language`` (when we can tell)."""
    from common.code.checks import check_parse

    if language not in CODE_LANGUAGES:
        return None
    result = check_parse(code, language)
    if result.ok or not result.ran:
        return None
    return AnalysisFinding(
        # A tree-sitter grammar may lag the language: its verdict is weaker than Python's.
        severity="high" if language == "python" else "medium",
        source="parse",
        rule="parse",
        path=path,
        line=result.line,
        title=f"the file does not parse as {language}: {result.message}",
        recommendation="fix the syntax error first: tools and readers see broken code.",
        test=test,
    )


def security_findings(path: str, code: str, test: bool) -> list[AnalysisFinding]:
    """Bandit (Python) and the secret patterns (every file), from the security worker."""
    from common.agents.workers.security import scan_file

    findings = []
    for found in scan_file(path, code):
        if test and found.rule == "B101":
            continue  # assert is how pytest tests check: not a finding in a test file
        findings.append(
            AnalysisFinding(
                severity=found.severity,
                source=found.source,
                rule=found.rule,
                path=path,
                line=found.line,
                title=f"{found.rule}: {found.message}",
                recommendation=found.fix,
                test=test,
                cwe=found.cwe,
            )
        )
    return findings


# -- Python: ruff -------------------------------------------------------------

# Most specific prefix first: the bug rules, then the families.
_RUFF_SEVERITY: list[tuple[str, Severity]] = [
    ("E9", "high"),
    ("F63", "high"),
    ("F7", "high"),
    ("F82", "high"),
    ("F401", "low"),
    ("F841", "low"),
    ("F811", "low"),
    ("F541", "info"),
    ("F", "medium"),
    ("B", "medium"),
    ("E7", "low"),
    ("SIM", "low"),
    ("C4", "low"),
    ("UP", "info"),
    ("E", "info"),
    ("W", "info"),
]


def ruff_severity(code: str) -> Severity:
    return next((sev for prefix, sev in _RUFF_SEVERITY if code.startswith(prefix)), "low")


def ruff_findings(
    files: dict[str, str], *, timeout_s: float = RUFF_TIMEOUT_S
) -> tuple[list[AnalysisFinding], ToolRun]:
    """Ruff's findings (``RUFF_SELECT``) on the Python ``files``, in one run over a copy.

    Syntax errors are left to :func:`parse_finding`: one finding per broken file.
    """
    from common.code.checks import _ruff_binary

    if not files:
        return [], ToolRun(name="ruff", ran=False, message="no Python files")
    binary = _ruff_binary()
    if binary is None:
        return [], ToolRun(name="ruff", ran=False, message="ruff is not installed")
    with tempfile.TemporaryDirectory(prefix="analyze-") as folder:
        root = Path(folder).resolve()
        for path, content in files.items():
            target = (root / path).resolve()
            if not target.is_relative_to(root):
                continue  # inputs are checked paths; this only guards the disk
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        try:
            done = subprocess.run(
                [
                    binary,
                    "check",
                    "--isolated",
                    "--no-cache",
                    "--exit-zero",
                    "--select",
                    RUFF_SELECT,
                    "--ignore",
                    RUFF_IGNORE,
                    "--output-format",
                    "json",
                    ".",
                ],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], ToolRun(name="ruff", ran=False, message=f"did not run: {type(exc).__name__}")
        try:
            reported = json.loads(done.stdout or "[]")
        except json.JSONDecodeError:
            return [], ToolRun(name="ruff", ran=False, message="gave no report")
        findings = []
        for item in reported:
            rule = item.get("code")
            if not rule:
                continue
            try:
                path = Path(item["filename"]).resolve().relative_to(root).as_posix()
            except (KeyError, ValueError):
                continue
            fix = (item.get("fix") or {}).get("message")
            url = item.get("url")
            findings.append(
                AnalysisFinding(
                    severity=ruff_severity(rule),
                    source="ruff",
                    rule=rule,
                    path=path,
                    line=(item.get("location") or {}).get("row"),
                    title=f"{rule}: {item.get('message', '')}",
                    recommendation=str(fix or (f"see {url}" if url else "see ruff's rule docs")),
                    test=is_test_path(path),
                )
            )
    return findings, ToolRun(name="ruff", ran=True, findings=len(findings))


# -- the deterministic part ------------------------------------------------------


@dataclass
class Measured:
    files: list[FileMetrics]
    findings: list[AnalysisFinding]
    checks: list[ToolRun]
    skipped: int
    contents: dict[str, str] = field(default_factory=dict)


def file_language(path: str, workspace: Workspace) -> str | None:
    if path == workspace.primary and workspace.language:
        return workspace.language
    return language_for_path(path)


def measure_workspace(
    workspace: Workspace,
    *,
    timeout_s: float = RUFF_TIMEOUT_S,
    on_file: Callable[[int, int, str], None] | None = None,
) -> Measured:
    """Metrics and tool findings for every file of ``workspace`` (within the bounds);
    ``on_file(done, total, path)`` after each file is measured."""
    contents: dict[str, str] = {}
    used = 0
    skipped = 0
    # Sources before tests, so that the bounds cut tests first.
    for path in [*workspace.sources, *workspace.tests]:
        content = workspace.files[path]
        if len(contents) >= MAX_ANALYZED_FILES or used + len(content) > MAX_ANALYZED_CHARS:
            skipped += 1
            continue
        contents[path] = content
        used += len(content)
    files: list[FileMetrics] = []
    findings: list[AnalysisFinding] = []
    python: dict[str, str] = {}
    scanned = 0
    for path, content in contents.items():
        language = file_language(path, workspace)
        metrics = measure_file(path, content, language)
        files.append(metrics)
        broken = parse_finding(path, content, language, metrics.test)
        if broken is not None:
            metrics.parsed = False
            findings.append(broken)
        findings += complexity_findings(metrics)
        findings += security_findings(path, content, metrics.test)
        scanned += 1
        if on_file is not None:
            on_file(scanned, len(contents), path)
        if language == "python":
            python[path] = content
    lint, lint_run = ruff_findings(python, timeout_s=min(timeout_s, RUFF_TIMEOUT_S))
    findings += lint
    by_source = Counter(f.source for f in findings)
    measured_by = Counter(
        "radon" if f.path in python else "tree-sitter"
        for f in findings
        if f.source in ("complexity", "maintainability")
    )
    checks = [
        ToolRun(
            name="radon",
            ran=bool(python),
            findings=measured_by["radon"],
            message="" if python else "no Python files",
        ),
        lint_run,
        ToolRun(
            name="security-scan",
            ran=scanned > 0,
            findings=by_source["bandit"] + by_source["secrets"],
            message="bandit (Python) and secret patterns (every file)",
        ),
        ToolRun(
            name="tree-sitter",
            ran=any(f.language in CODE_LANGUAGES and f.language != "python" for f in files),
            findings=measured_by["tree-sitter"],
            message="size and complexity estimate for languages other than Python",
        ),
    ]
    return Measured(files, findings, checks, skipped, contents)


def summarize(measured: Measured, findings: list[AnalysisFinding]) -> MetricsSummary:
    files = measured.files
    functions = [(m.path, f) for m in files for f in m.functions]
    total_functions = sum(m.function_count for m in files)
    worst = sorted(functions, key=lambda pf: (-pf[1].complexity, pf[0], pf[1].line))
    maintainability = [m.maintainability for m in files if m.maintainability is not None]
    counts = Counter(f.severity for f in findings)
    return MetricsSummary(
        files=len(files),
        source_files=sum(1 for m in files if not m.test),
        test_files=sum(1 for m in files if m.test),
        skipped_files=measured.skipped,
        lines=sum(m.lines for m in files),
        sloc=sum(m.sloc for m in files),
        functions=total_functions,
        average_complexity=round(sum(m.complexity for m in files) / total_functions, 2)
        if total_functions
        else 0.0,
        max_complexity=max((m.max_complexity for m in files), default=0),
        worst_functions=[WorstFunction(path=p, **f.model_dump()) for p, f in worst[:10]],
        lowest_maintainability=min(maintainability) if maintainability else None,
        findings={s: counts[s] for s in SEVERITIES},
    )


# -- the model ---------------------------------------------------------------


@dataclass
class Shown:
    """The numbered code the model is shown, and how its line numbers map back."""

    text: str
    paths: list[str]
    # (first shown line, last shown line, path): each file is shown from its line 1.
    spans: list[tuple[int, int, str]]

    def locate(self, line: int | None) -> tuple[str | None, int | None]:
        """The file and line that shown ``line`` is, or (None, None) when it is none."""
        if line is None:
            return None, None
        for first, last, path in self.spans:
            if first <= line <= last:
                return path, line - first + 1
        return None, None


def model_code_budget(model: ModelClient) -> int:
    from common.errors import AppError

    try:
        window = int(model.context_length())
    except AppError:
        # Not known now (the server is slow to say): the smallest usual window is safe,
        # and if the server is down the review itself says so.
        window = 4096
    room = (window - MODEL_RESERVED_TOKENS) * CHARS_PER_TOKEN
    return max(MIN_MODEL_CODE_CHARS, min(MAX_MODEL_CODE_CHARS, room))


def choose_shown(
    measured: Measured,
    workspace: Workspace,
    *,
    budget: int,
    explicit_primary: bool,
    relevant: list[str] | None = None,
) -> Shown:
    """The files to show the model, numbered, within ``budget`` characters.

    The primary file first when the caller named it (or it is the only one); then
    files semantic memory found relevant to the instructions; then the most complex.
    """
    by_path = {m.path: m for m in measured.files}
    complex_first = sorted(
        (m for m in measured.files if not m.test and m.language in CODE_LANGUAGES),
        key=lambda m: (-m.max_complexity, -m.complexity, m.path),
    )
    order: list[str] = []
    if explicit_primary or len(measured.contents) == 1:
        order.append(workspace.primary)
    order += [p for p in relevant or [] if p in by_path]
    order += [m.path for m in complex_first]
    if not order:
        order.append(workspace.primary)
    seen: set[str] = set()
    several = len(measured.contents) > 1
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    used = 0
    number = 0
    for path in order:
        if path in seen or path not in measured.contents:
            continue
        seen.add(path)
        lines = measured.contents[path].splitlines()
        header = f"==> {path} <==\n" if several else ""
        kept: list[str] = []
        for line in lines:
            numbered = f"{number + len(kept) + 1:>4}| {line}\n"
            if used + len(header) + len(numbered) > budget:
                break
            kept.append(numbered)
            used += len(numbered)
        if not kept:
            break
        used += len(header)
        parts.append(header + "".join(kept))
        spans.append((number + 1, number + len(kept), path))
        number += len(kept)
        if len(kept) < len(lines):
            parts.append(f"     ... ({len(lines) - len(kept)} more lines not shown)\n")
            break
    return Shown("".join(parts), [s[2] for s in spans], spans)


def metrics_for_model(summary: MetricsSummary, findings: list[AnalysisFinding]) -> dict[str, Any]:
    """What the tools found, short: the model adds to it instead of repeating it."""
    return {
        "files": summary.files,
        "lines of code": summary.sloc,
        "functions": summary.functions,
        "average complexity": summary.average_complexity,
        "most complex functions": [
            f"{f.path}:{f.line} {f.name} complexity {f.complexity} (rank {f.rank})"
            for f in summary.worst_functions[:MODEL_WORST_FUNCTIONS]
        ],
        "lowest maintainability index": summary.lowest_maintainability,
        "findings by severity": {k: v for k, v in summary.findings.items() if v},
        "top tool findings (already reported)": [
            f"{f.path}:{f.line or '-'} [{f.severity}] {f.title}"
            for f in findings[:MODEL_TOP_FINDINGS]
        ],
    }


def model_findings(review_findings: list[Finding], shown: Shown) -> list[AnalysisFinding]:
    """The model's findings, each placed in its file; a line it was not shown is nulled."""
    only = shown.paths[0] if len(shown.paths) == 1 else None
    placed = []
    for found in review_findings:
        path, line = shown.locate(found.line)
        placed.append(
            AnalysisFinding(
                severity=found.severity,
                source="model",
                path=path or only,
                line=line,
                title=found.title,
                recommendation=found.recommendation,
                test=is_test_path(path) if path else False,
            )
        )
    return placed


# -- merging -----------------------------------------------------------------


def prioritise(findings: list[AnalysisFinding], files: list[FileMetrics]) -> list[AnalysisFinding]:
    """Severity first, then the complexity of the function each is in; tests after sources."""
    by_path = {m.path: m for m in files}
    for finding in findings:
        if finding.complexity is None and finding.path in by_path and finding.line is not None:
            finding.complexity = _enclosing_complexity(by_path[finding.path], finding.line)
    return sorted(
        findings,
        key=lambda f: (
            SEVERITIES.index(f.severity),
            f.test,
            -(f.complexity or 0),
            f.path or "",
            f.line or 0,
        ),
    )


def _enclosing_complexity(metrics: FileMetrics, line: int) -> int | None:
    around = [f for f in metrics.functions if f.line <= line <= f.end_line]
    # The innermost function: a method's complexity, not its class's.
    innermost = min(around, key=lambda f: f.end_line - f.line, default=None)
    return innermost.complexity if innermost else None


# -- the action --------------------------------------------------------------

Progress = Callable[[str, float, str], None]


def request_digest(request: CodeInput) -> str:
    payload = json.dumps(job_input(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def analyze_request(
    request: CodeInput,
    *,
    owner_key_id: UUID | None,
    model: ModelClient,
    max_attempts: int,
    on_progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> AnalyzeOutput:
    """/api/analyze: measure, review with the model, merge, store; the stored report.

    Parameters
    ----------
    max_attempts:
        Model attempts when ``request.options.max_attempts`` does not say.
    on_progress, checkpoint:
        A job's progress callback, and its cancel check (raises to stop the job)
        called between steps; None on a request.

    Raises
    ------
    NotFound
        ``project_id`` is not a project of this key.
    InvalidInput
        ``path`` is not among the files; a project without stored files; no key
        (a job without the key that asked for it: reports are per key).
    ModelUnavailable, ModelNotPulled, ModelTimeout
        The model server could not answer (a model answer it could not repair is
        not an error: the report keeps the measurements and says so in ``model_error``).
    StoreUnavailable
        MongoDB did not take the report.
    """
    from common.agents.universal import analyze
    from common.errors import ModelOutputInvalid
    from common.history import record_history
    from common.reports import new_report_id, report_url, save_report

    if owner_key_id is None:
        from common.errors import InvalidInput

        raise InvalidInput("an analysis job needs the key that asked for it (reports are per key)")
    started = time.monotonic()
    step = on_progress or (lambda _step, _percent, _message: None)
    step("load", 5, "reading the files")
    workspace = load_workspace(request, owner_key_id=owner_key_id, whole=True)
    step("measure", 15, f"measuring {len(workspace.files)} file(s)")
    measured = measure_workspace(
        workspace,
        timeout_s=request.options.timeout_s,
        on_file=per_file(on_progress, "measure", 15, 35),
    )
    tool_findings = prioritise(measured.findings, measured.files)
    summary = summarize(measured, tool_findings)
    stop_here = checkpoint or (lambda: None)
    stop_here()
    step("review", 40, "asking the model for a review")
    relevant = _relevant_paths(request, owner_key_id=owner_key_id)
    shown = choose_shown(
        measured,
        workspace,
        budget=model_code_budget(model),
        explicit_primary=request.path is not None,
        relevant=relevant,
    )
    attempts = request.options.max_attempts or max_attempts
    review_summary: str | None = None
    model_error: str | None = None
    reviewed: list[AnalysisFinding] = []
    usage, model_name, cached, tries = Usage(), model.model, False, 0
    try:
        checked = analyze(
            shown.text,
            model=model,
            language=workspace.language,
            metrics=metrics_for_model(summary, tool_findings),
            instructions=request.instructions,
            max_attempts=attempts,
        )
    except ModelOutputInvalid as exc:
        # The measurements stand on their own: keep them, say what the model did.
        model_error = exc.message
        tries = attempts
    else:
        review_summary = checked.value.summary
        reviewed = model_findings(checked.value.findings, shown)
        usage, model_name = checked.usage, checked.model
        cached, tries = checked.cached, len(checked.attempts)
    stop_here()
    step("store", 90, "storing the report")
    findings = prioritise([*measured.findings, *reviewed], measured.files)
    summary.findings = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    report_id = new_report_id()
    digest = request_digest(request)
    output = AnalyzeOutput(
        report_id=report_id,
        report_url=report_url(report_id),
        created_at=datetime.now(UTC),
        request_digest=digest,
        language=workspace.language,
        primary=workspace.primary,
        summary=review_summary,
        findings=findings[:MAX_FINDINGS],
        findings_total=len(findings),
        metrics=summary,
        files=measured.files,
        checks=measured.checks,
        reviewed=shown.paths,
        model=model_name,
        usage=usage,
        attempts=tries,
        cached=cached,
        duration_ms=round((time.monotonic() - started) * 1000),
        model_error=model_error,
    )
    save_report(
        "analysis",
        key_id=owner_key_id,
        body=output.model_dump(mode="json"),
        report_id=report_id,
        request_digest=digest,
    )
    record_history(
        {
            # Beside the model's attempts (task "analyze" too): what the action answered.
            "task": "analyze",
            "kind": "result",
            "key_id": str(owner_key_id),
            "request_digest": digest,
            "ok": model_error is None,
            "report_id": report_id,
            "checks": [c.model_dump() for c in measured.checks],
            "result": {
                "files": summary.files,
                "findings": summary.findings,
                "max_complexity": summary.max_complexity,
                "model_attempts": tries,
                "model_error": model_error,
            },
        }
    )
    step("done", 100, f"report {report_id}")
    return output


def _relevant_paths(request: CodeInput, *, owner_key_id: UUID) -> list[str]:
    """Files of the project that semantic memory finds closest to the instructions."""
    if request.project_id is None or not request.instructions.strip():
        return []
    from common.errors import AppError
    from common.memory.context import project_context

    try:
        snippets = project_context(
            project_id=request.project_id, owner_key_id=owner_key_id, query=request.instructions
        )
    except AppError as exc:
        # Choosing what to show the model is a nicety; the analysis goes on without it.
        log.warning("no semantic context for the analysis", extra={"error": exc.code})
        return []
    return list(dict.fromkeys(s.path for s in snippets))


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The "analyze" job: the same analysis as the request (its options.max_attempts
    included), with progress and cancel (JobCancelled: no report is stored)."""
    from common.actions.base import job_runner

    return job_runner(CodeInput, analyze_request, cancellable=True)(input, ctx)
