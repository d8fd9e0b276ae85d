"""Language detection, code extraction from answers, parse and lint checks."""

import pytest

from common.code.checks import check_code, check_lint, check_parse
from common.code.extract import extract_blocks, extract_code
from common.code.languages import detect_language, language_for_path


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def add(a, b)\n    return a + b\n", "python"),
        ("import os\nprint(os.getcwd())\n", "python"),
        ("def greet(name)\n  puts name\nend\n", "ruby"),
        ("const x = 1;\nconsole.log(x)\n", "javascript"),
        ("let n: number = 1;\ninterface A { b: string }\n", "typescript"),
        ("package main\n\nfunc main() {}\n", "go"),
        ("fn main() {\n    let mut x = 1;\n}\n", "rust"),
        ("<?php echo 1;", "php"),
        ("#!/bin/bash\necho hi\n", "bash"),
        ("FROM python:3.12-slim\nRUN pip install x\n", "dockerfile"),
        ("#include <stdio.h>\nint main(void) { return 0; }\n", "c"),
        ("just some words", None),
    ],
)
def test_detect_language(code: str, expected: str | None) -> None:
    assert detect_language(code) == expected


def test_hint_and_path_win_over_content() -> None:
    assert detect_language("x = 1", hint="JS") == "javascript"
    assert detect_language("x = 1", path="src/app.ts") == "typescript"
    assert language_for_path("deploy/Dockerfile") == "dockerfile"


def test_blocks_carry_language_path_and_whether_they_closed() -> None:
    answer = (
        "Here:\n```python src/app.py\ndef f():\n    return 1\n```\n"
        "and\n```js\n// file: web/x.js\nconsole.log(1)\n```\n"
        "```go\nfunc main() {"
    )

    blocks = extract_blocks(answer)

    assert [(b.language, b.path, b.closed) for b in blocks] == [
        ("python", "src/app.py", True),
        ("javascript", "web/x.js", True),
        ("go", None, False),
    ]


def test_extract_prefers_the_longest_block_in_the_wanted_language() -> None:
    answer = "```bash\npip install x\n```\n```python\nimport x\n\nx.run()\n```\n```python\nx\n```"

    block = extract_code(answer, language="python")

    assert block is not None and block.code == "import x\n\nx.run()\n"


def test_an_answer_without_fences_is_taken_whole_and_empty_is_none() -> None:
    assert extract_code("def f(): pass").code == "def f(): pass\n"  # type: ignore[union-attr]
    assert extract_code("  \n") is None


@pytest.mark.parametrize(
    ("code", "language", "message"),
    [
        ("def f(:\n  pass\n", "python", "line 1: invalid syntax"),
        ("function f(a){ return a+ }", "javascript", "line 1: syntax error"),
        ("fn main() { let x = ; }", "rust", "line 1:"),
        ("FROM python:3.12\nCOPYY . .\n", "dockerfile", "line 2: unknown instruction COPYY"),
        ("RUN echo hi\n", "dockerfile", "starts with FROM"),
    ],
)
def test_parse_errors_name_the_line(code: str, language: str, message: str) -> None:
    result = check_parse(code, language)

    assert not result.ok
    assert message in result.message


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("def f():\n    return 1\n", "python"),
        ("export function f(a: number): number { return a + 1 }\n", "typescript"),
        ("package main\nfunc main() {}\n", "go"),
        ("public class A { void f() {} }\n", "java"),
        ("FROM python:3.12-slim\nUSER app\n", "dockerfile"),
    ],
)
def test_valid_code_parses(code: str, language: str) -> None:
    assert check_parse(code, language).ok


def test_lint_catches_undefined_names_in_python_only() -> None:
    result = check_lint("def f():\n    return missing_name\n", "python")

    assert not result.ok and "F821" in result.message and result.line == 2
    assert check_lint("import os\n", "python").ok  # style is not the model's problem
    assert not check_lint("x", "go").ran


def test_unknown_language_is_not_run_rather_than_failed() -> None:
    results = check_code("whatever", None)

    assert all(r.ok and not r.ran for r in results)


def test_checking_a_dockerfile_writes_nothing(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]

    check_parse("FROM python:3.12-slim\n", "dockerfile")

    assert list(tmp_path.iterdir()) == []  # type: ignore[attr-defined]
