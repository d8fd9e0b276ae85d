"""The deterministic half of /api/analyze: metrics, tool findings, line mapping, order."""

from __future__ import annotations

from typing import Any

import pytest

from common.actions import analyze as an
from common.actions.inputs import Workspace
from common.agents.universal import Finding

PY_COMPLEX = """\
import subprocess


def route(kind, value, strict):
    \"\"\"Pick a handler.\"\"\"
    # several branches on purpose
    if kind == "a" and value:
        return 1
    elif kind == "b" or strict:
        for item in value:
            if item:
                return 2
    while value:
        value = value[1:]
    try:
        subprocess.call(value, shell=True)
    except OSError:
        pass
    return 0 if strict else 3


class Box:
    def size(self):
        return 1
"""

# if, &&, else-if, ||, for-of, for, while, do, case 1 (not default), catch, ?:, ??
# = 12 branches: complexity 13, the count ESLint's `complexity` rule gives.
JS_KNOWN = """\
function decide(a, b) {
  if (a && b) { return 1 } else if (a || b) { return 2 }
  for (const x of a) {}
  for (let i = 0; i < 1; i++) {}
  while (a) {}
  do {} while (b);
  switch (a) { case 1: break; default: break }
  try {} catch (e) {}
  return a ? 1 : (b ?? 3)
}
// a comment
const pick = (x) => (x ? 1 : 0);
class Shelf {
  count() { return 1 }
}
"""


def test_radon_measures_each_python_function_and_the_file() -> None:
    metrics = an.python_metrics("svc/route.py", PY_COMPLEX)

    by_name = {f.name: f for f in metrics.functions}
    # 1 + if + and + elif + or + for + if + while + except + ternary
    assert by_name["route"].complexity == 10
    assert (by_name["route"].line, by_name["route"].end_line) == (4, 19)
    assert by_name["route"].rank == "B"
    assert by_name["Box.size"].complexity == 1
    assert metrics.function_count == 2 and metrics.max_complexity == 10
    assert metrics.lines == 24 and metrics.comments == 1
    assert 0 < metrics.sloc < metrics.lines
    assert metrics.maintainability is not None and 0 < metrics.maintainability <= 100
    assert metrics.maintainability_rank == "A"
    assert metrics.parsed and metrics.language == "python" and not metrics.test


def test_python_that_does_not_parse_still_gets_line_counts() -> None:
    metrics = an.python_metrics("broken.py", "def f(:\n    return 1\n")

    assert not metrics.parsed
    assert metrics.lines == 2 and metrics.functions == []


def test_a_javascript_function_has_its_known_complexity() -> None:
    metrics = an.tree_sitter_metrics("web/decide.js", JS_KNOWN, "javascript")

    assert metrics is not None and metrics.parsed
    by_name = {f.name: f for f in metrics.functions}
    assert by_name["decide"].complexity == 13
    assert by_name["decide"].rank == "C"
    assert (by_name["decide"].line, by_name["decide"].end_line) == (1, 10)
    # An arrow function takes the name it is assigned to; a method, its class's.
    assert by_name["pick"].complexity == 2
    assert by_name["Shelf.count"].complexity == 1
    assert metrics.function_count == 3 and metrics.complexity == 16
    assert metrics.lines == 15 and metrics.comments == 1 and metrics.sloc == 14


def test_nested_functions_are_measured_on_their_own() -> None:
    code = "function outer(a) {\n  if (a) {}\n  const inner = () => { if (a) {} if (a) {} };\n}\n"

    metrics = an.tree_sitter_metrics("n.js", code, "javascript")

    assert metrics is not None
    assert {f.name: f.complexity for f in metrics.functions} == {"outer": 2, "inner": 3}


def test_typescript_uses_the_javascript_table() -> None:
    code = "export function f(a: number): number {\n  return a > 1 && a < 3 ? 1 : 0\n}\n"

    metrics = an.tree_sitter_metrics("f.ts", code, "typescript")

    assert metrics is not None
    assert [(f.name, f.complexity) for f in metrics.functions] == [("f", 3)]


def test_go_counts_cases_but_not_default_and_names_methods_by_receiver() -> None:
    code = (
        "package main\n\n"
        "func classify(a int) int {\n"
        "\tif a > 1 && a < 3 {\n\t\treturn 1\n\t}\n"
        "\tswitch a {\n\tcase 1:\n\t\treturn 2\n\tcase 2:\n\t\treturn 3\n"
        "\tdefault:\n\t\treturn 4\n\t}\n"
        "}\n\n"
        "func (s *Server) Run() {\n\tfor {\n\t}\n}\n"
    )

    metrics = an.tree_sitter_metrics("main.go", code, "go")

    assert metrics is not None
    assert {f.name: f.complexity for f in metrics.functions} == {"classify": 5, "Server.Run": 2}


def test_java_counts_case_labels_catch_and_ternaries() -> None:
    code = (
        "class A {\n"
        "  int f(int a) {\n"
        "    try { if (a > 1 || a < -1) { return 1; } } catch (Exception e) { return 0; }\n"
        "    switch (a) { case 1: break; case 2: break; default: break; }\n"
        "    for (int x : xs) {}\n"
        "    return a > 0 ? 1 : 2;\n"
        "  }\n"
        "  A() {}\n"
        "}\n"
    )

    metrics = an.tree_sitter_metrics("A.java", code, "java")

    assert metrics is not None
    # 1 + if + || + catch + case + case + for + ?:
    assert {f.name: f.complexity for f in metrics.functions} == {"A.f": 8, "A.A": 1}


@pytest.mark.parametrize(
    ("language", "path", "code", "expected"),
    [
        (
            "c",
            "m.c",
            "int f(int a) { if (a && a > 2) return 1; switch (a) { case 1: return 2;"
            " default: return 0; } }\n",
            {"f": 4},
        ),
        ("rust", "m.rs", "fn f(a: i32) -> i32 { match a { 1 => 2, 2 => 3, _ => 4 } }\n", {"f": 3}),
        ("ruby", "m.rb", "def f(a)\n  if a && b\n    1\n  elsif c\n    2\n  end\nend\n", {"f": 4}),
    ],
)
def test_other_languages_use_the_generic_table(
    language: str, path: str, code: str, expected: dict[str, int]
) -> None:
    metrics = an.tree_sitter_metrics(path, code, language)

    assert metrics is not None
    assert {f.name: f.complexity for f in metrics.functions} == expected


def test_a_language_without_functions_gets_line_counts_only() -> None:
    metrics = an.measure_file("config/app.yaml", "a: 1\n\nb: 2\n", "yaml")

    assert (metrics.lines, metrics.sloc, metrics.function_count) == (3, 2, 0)
    assert an.measure_file("notes", "x\n", None).language is None


def test_complex_functions_become_findings_ranked_by_severity() -> None:
    metrics = an.tree_sitter_metrics("web/decide.js", JS_KNOWN, "javascript")
    assert metrics is not None

    findings = an.complexity_findings(metrics)

    assert [(f.source, f.rule, f.line, f.severity) for f in findings] == [
        ("complexity", "complexity-C", 1, "low")
    ]
    assert findings[0].complexity == 13 and "decide" in findings[0].title


def test_ruff_and_bandit_findings_on_python_files() -> None:
    files = {"svc/route.py": PY_COMPLEX, "tests/test_route.py": "def test_it():\n    assert 1\n"}

    lint, run = an.ruff_findings(files)
    security = an.security_findings("svc/route.py", PY_COMPLEX, False)
    in_tests = an.security_findings("tests/test_route.py", files["tests/test_route.py"], True)

    assert run.ran and run.findings == len(lint)
    assert ("F401", "svc/route.py") not in {(f.rule, f.path) for f in lint}  # it is used
    assert {f.rule for f in lint} >= {"SIM105"}  # try/except/pass -> contextlib.suppress
    rules = {f.rule: f for f in security}
    assert rules["B602"].severity == "high" and rules["B602"].line == 16
    assert rules["B602"].source == "bandit" and rules["B602"].cwe == 78
    assert "shell=False" in rules["B602"].recommendation
    # pytest's asserts are how tests check: B101 is not reported in a test file.
    assert in_tests == []


def test_ruff_severity_table() -> None:
    assert an.ruff_severity("F821") == "high"
    assert an.ruff_severity("F401") == "low"
    assert an.ruff_severity("B006") == "medium"
    assert an.ruff_severity("E711") == "low"
    assert an.ruff_severity("W291") == "info"
    assert an.ruff_severity("XYZ1") == "low"


def test_a_secret_in_any_file_is_found() -> None:
    text = 'const key = "AKIAABCDEFGHIJKLMNOP";\n'

    findings = an.security_findings("web/config.js", text, False)

    assert [(f.rule, f.severity, f.source) for f in findings] == [
        ("secret-aws-access-key", "high", "secrets")
    ]
    assert "AKIAABCDEFGHIJKLMNOP" not in findings[0].title


def test_measure_workspace_marks_tests_and_skips_past_the_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(an, "MAX_ANALYZED_FILES", 2)
    workspace = Workspace(
        {
            "svc/route.py": PY_COMPLEX,
            "web/decide.js": JS_KNOWN,
            "tests/test_route.py": "def test_it():\n    assert 1\n",
        },
        "svc/route.py",
        "python",
    )

    measured = an.measure_workspace(workspace)

    # Sources come first: the test file is what the bound cuts.
    assert [m.path for m in measured.files] == ["svc/route.py", "web/decide.js"]
    assert measured.skipped == 1
    names = {c.name: c for c in measured.checks}
    assert names["radon"].ran and names["ruff"].ran and names["tree-sitter"].ran
    summary = an.summarize(measured, measured.findings)
    assert summary.skipped_files == 1 and summary.files == 2
    assert summary.worst_functions[0].path == "web/decide.js"
    assert summary.max_complexity == 13 and summary.findings["high"] >= 1


def _measured(files: dict[str, str], primary: str) -> tuple[an.Measured, Workspace]:
    workspace = Workspace(files, primary, an.language_for_path(primary))
    return an.measure_workspace(workspace), workspace


def test_the_model_sees_numbered_lines_and_its_lines_map_back_to_files() -> None:
    files = {"a.py": "x = 1\ny = 2\n", "web/decide.js": JS_KNOWN}
    measured, workspace = _measured(files, "a.py")

    shown = an.choose_shown(measured, workspace, budget=10_000, explicit_primary=True)

    assert shown.paths == ["a.py", "web/decide.js"]
    assert shown.text.startswith("==> a.py <==\n   1| x = 1\n   2| y = 2\n==> web/decide.js <==\n")
    assert "   3| function decide(a, b) {" in shown.text
    assert shown.locate(2) == ("a.py", 2)
    assert shown.locate(3) == ("web/decide.js", 1)
    assert shown.locate(17) == ("web/decide.js", 15)
    assert shown.locate(18) == (None, None)
    assert shown.locate(None) == (None, None)


def test_without_a_named_file_the_most_complex_comes_first_and_the_budget_cuts() -> None:
    files = {"a.py": "x = 1\n", "web/decide.js": JS_KNOWN}
    measured, workspace = _measured(files, "a.py")

    shown = an.choose_shown(measured, workspace, budget=200, explicit_primary=False)

    assert shown.paths == ["web/decide.js"]
    assert "more lines not shown" in shown.text
    last = shown.spans[-1][1]
    assert shown.locate(last) == ("web/decide.js", last) and shown.locate(last + 1) == (None, None)


def test_a_model_line_outside_the_shown_code_is_nulled() -> None:
    measured, workspace = _measured({"a.py": PY_COMPLEX}, "a.py")
    shown = an.choose_shown(measured, workspace, budget=10_000, explicit_primary=False)
    review = [
        Finding(line=16, severity="high", title="shell", recommendation="use a list"),
        Finding(line=400, severity="low", title="invented", recommendation="nothing"),
        Finding(line=None, severity="info", title="general", recommendation="docs"),
    ]

    placed = an.model_findings(review, shown)

    assert [(f.path, f.line, f.source) for f in placed] == [
        ("a.py", 16, "model"),
        ("a.py", None, "model"),
        ("a.py", None, "model"),
    ]


def test_findings_are_ordered_by_severity_then_complexity_then_tests_last() -> None:
    measured, _ = _measured(
        {"a.py": PY_COMPLEX, "tests/test_a.py": "def test_x():\n    x = 1\n"}, "a.py"
    )

    def finding(severity: Any, path: str, line: int | None, **extra: Any) -> an.AnalysisFinding:
        return an.AnalysisFinding(
            severity=severity,
            source="model",
            path=path,
            line=line,
            title=f"{severity} {path}:{line}",
            recommendation="r",
            **extra,
        )

    ordered = an.prioritise(
        [
            finding("low", "a.py", 1),
            finding("high", "tests/test_a.py", 2, test=True),
            finding("high", "a.py", 23),  # in Box.size, complexity 1
            finding("high", "a.py", 10),  # in route, complexity 10
            finding("critical", "a.py", None),
        ],
        measured.files,
    )

    assert [f.title for f in ordered] == [
        "critical a.py:None",
        "high a.py:10",
        "high a.py:23",
        "high tests/test_a.py:2",
        "low a.py:1",
    ]
    assert ordered[1].complexity == 10 and ordered[2].complexity == 1


def test_metrics_for_the_model_are_short_and_name_the_worst_function() -> None:
    measured, _ = _measured({"web/decide.js": JS_KNOWN}, "web/decide.js")
    summary = an.summarize(measured, measured.findings)

    given = an.metrics_for_model(summary, measured.findings)

    assert given["most complex functions"][0] == "web/decide.js:1 decide complexity 13 (rank C)"
    assert given["findings by severity"] == {"low": 1}
    assert len(str(given)) < 2000


def test_the_request_digest_is_stable_and_input_sensitive() -> None:
    from common.actions.inputs import CodeInput

    one = an.request_digest(CodeInput(code="x = 1\n"))
    assert one == an.request_digest(CodeInput.model_validate({"code": "x = 1\n"}))
    assert one != an.request_digest(CodeInput(code="x = 2\n"))
