"""The code actions' pure parts: input rules, diffs, test pruning, type erasure, presets."""

from __future__ import annotations

import ast

import pytest
from pydantic import ValidationError

from common.actions.generate import GenerateInput, _paths_named, _with_extras
from common.actions.inputs import CodeInput, is_test_path, load_workspace
from common.actions.migrate import PRESETS, _regressions, _target_path, stack_name
from common.agents.architect import ProjectPlan
from common.code.checks import CheckResult
from common.code.diff import changed_paths, unified_diff
from common.code.prune import case_function, drop_js_tests, drop_python_tests
from common.code.tsstrip import StripError, strip_types


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "exactly one"),
        ({"code": "x = 1", "files": {"a.py": "x"}}, "exactly one"),
        ({"code": "   \n"}, "only whitespace"),
        ({"files": {"../etc/passwd": "x"}}, "'..'"),
        ({"files": {"/abs.py": "x"}}, "relative"),
        ({"files": {"a\x00.py": "x"}}, "control characters"),
        ({"files": {"a/./b.py": "x"}}, "normalised"),
        ({"code": "x", "options": {"timeout_s": 0}}, "greater than 0"),
        ({"code": "x", "options": {"bogus": 1}}, "Extra inputs"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(body: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CodeInput.model_validate(body)
    assert problem in str(caught.value)


def test_async_is_the_option_name_on_the_wire() -> None:
    parsed = CodeInput.model_validate({"code": "x = 1", "options": {"async": True}})
    assert parsed.options.run_async is True


def test_one_file_gets_a_name_from_its_language() -> None:
    ws = load_workspace(CodeInput(code="def f():\n    return 1\n"), owner_key_id=None)
    assert ws.primary == "solution.py" and ws.language == "python" and ws.tests == []


def test_the_primary_file_is_a_source_not_a_test() -> None:
    files = {"tests/test_calc.py": "import calc\n", "calc.py": "def add(a, b):\n    return a + b\n"}
    ws = load_workspace(CodeInput(files=files), owner_key_id=None)
    assert ws.primary == "calc.py" and ws.tests == ["tests/test_calc.py"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("test_a.py", True),
        ("a_test.py", True),
        ("tests/helpers.py", True),
        ("conftest.py", True),
        ("src/a.test.js", True),
        ("src/a.spec.ts", True),
        ("__tests__/a.js", True),
        ("src/contest.py", False),
        ("src/latest.js", False),
    ],
)
def test_test_files_are_recognised_by_convention(path: str, expected: bool) -> None:
    assert is_test_path(path) is expected


def test_a_diff_covers_changed_added_and_deleted_files_and_missing_newlines() -> None:
    before = {"a.py": "x = 1\ny = 2", "gone.py": "z = 3\n", "same.py": "s\n"}
    after = {"a.py": "x = 1\ny = 3\n", "new.py": "n = 1", "same.py": "s\n"}
    diff = unified_diff(before, after)
    assert "diff --git a/a.py b/a.py" in diff and "\\ No newline at end of file" in diff
    assert "new file mode 100644\n--- /dev/null\n+++ b/new.py" in diff
    assert "deleted file mode 100644\n--- a/gone.py\n+++ /dev/null" in diff
    assert "same.py" not in diff
    assert changed_paths(before, after) == ["a.py", "gone.py", "new.py"]


def test_failing_pytest_cases_are_dropped_and_the_rest_still_parses() -> None:
    source = (
        "import pytest\n\n\n"
        "def test_keep():\n    assert 1\n\n\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_drop(x):\n    assert x == 1\n\n\n"
        "class TestGroup:\n    def test_gone(self):\n        assert 0\n\n\n"
        "class TestMixed:\n    def test_a(self):\n        assert 1\n\n"
        "    def test_b(self):\n        assert 0\n"
    )
    names = [
        "test_x.py::test_drop[2]",
        "test_x.py::TestGroup::test_gone",
        "test_x.py::TestMixed::test_b",
    ]
    pruned = drop_python_tests(source, names)
    tree = ast.parse(pruned)
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert top == ["test_keep", "TestMixed"]
    assert "test_b" not in pruned and "parametrize" not in pruned
    assert case_function("t.py::TestX::test_y[1-2]") == ("TestX", "test_y")


def test_failing_node_tests_are_dropped_by_name() -> None:
    source = (
        "const test = require('node:test');\n"
        "test('adds', () => {});\n"
        "test('breaks', () => { throw new Error('x'); });\n"
        "describe('group', () => { it('inner', () => {}); });\n"
    )
    pruned = drop_js_tests(source, ["breaks", "group > inner"])
    assert "breaks" not in pruned and "inner" not in pruned and "test('adds'" in pruned


def test_type_erasure_keeps_lines_and_turns_enums_into_objects() -> None:
    source = (
        "interface P { x: number }\n"
        "enum Color { Red, Green = 5, Blue }\n"
        "export function f<T>(p: P, y?: string): number {\n"
        "  return (p as any).x! + Color.Blue;\n"
        "}\n"
    )
    js = strip_types(source)
    assert js.count("\n") == source.count("\n")
    assert "interface" not in js and ": number" not in js and " as any" not in js
    assert 'const Color = Object.freeze({"Red": 0, "Green": 5, "Blue": 6});' in js
    assert "export function f" in js and "(p, y)" in js.replace(" ", "").replace(",", ", ")


def test_type_erasure_refuses_typescript_that_does_not_parse() -> None:
    with pytest.raises(StripError, match="line 2"):
        strip_types("const a = 1;\nfunction (\n")


def test_stack_names_find_their_presets() -> None:
    assert (stack_name("Python 2.7"), stack_name("py3")) in PRESETS
    assert (stack_name("JS"), stack_name("TS")) in PRESETS
    assert (stack_name("Flask"), stack_name("FastAPI")) in PRESETS
    ts = PRESETS[("javascript", "typescript")]
    assert _target_path("src/a.js", ts) == "src/a.ts" and _target_path("b.jsx", ts) == "b.tsx"
    assert _target_path("a.py", PRESETS[("flask", "fastapi")]) == "a.py"


def test_regressions_are_behaviours_that_passed_on_the_source_only() -> None:
    baseline = {"t::a": "passed", "t::b": "failed"}
    assert _regressions({"t::a": "passed", "t::b": "failed"}, baseline, True) == []
    assert _regressions({"t::a": "failed"}, baseline, True) == ["t::a"]
    # The source could not run (Python 2): every carried test must pass.
    assert _regressions({"t::a": "passed", "t::b": "failed"}, {}, False) == ["t::b"]


def test_generate_adds_docker_and_kubernetes_tasks_when_asked() -> None:
    plan = ProjectPlan.model_validate(
        {"name": "p", "tasks": [{"id": "app", "path": "app.py", "description": "the app"}]}
    )
    extended = _with_extras(plan, dockerfile=True, kubernetes=True)
    assert [(t.worker, t.path) for t in extended.tasks] == [
        ("code", "app.py"),
        ("docker", "Dockerfile"),
        ("kubernetes", "k8s/manifests.yaml"),
    ]
    assert _with_extras(plan, dockerfile=False, kubernetes=False) is plan
    with pytest.raises(ValidationError):
        GenerateInput.model_validate({"spec": ""})


def test_a_failing_test_blames_its_file_and_the_code_it_names() -> None:
    files = {"calc.py": "", "test_calc.py": "", "other.py": ""}
    check = CheckResult("test:test_calc.py::test_add", False, "calc.py:3: AssertionError")
    assert _paths_named(check, files) == ["test_calc.py", "calc.py"]
