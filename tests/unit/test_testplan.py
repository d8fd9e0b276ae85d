"""How a repository runs its tests, and which tests touch a changed file."""

from __future__ import annotations

import json
from pathlib import Path

from common.environments.testplan import discover_tests, tests_for


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_pyproject_testpaths(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
            "tests/test_a.py": "",
        },
    )
    plan = discover_tests(tmp_path)
    assert plan.runner == "pytest" and plan.testpaths == ["tests"]
    assert "pyproject.toml" in plan.message


def test_ini_files(tmp_path: Path) -> None:
    for name, section in (
        ("pytest.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
        ("tox.ini", "pytest"),
    ):
        root = _write(tmp_path / name, {name: f"[{section}]\ntestpaths = checks\n"})
        plan = discover_tests(root)
        assert (plan.runner, plan.testpaths) == ("pytest", ["checks"]), name


def test_python_tests_by_convention(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/mod.py": "", "tests/test_mod.py": "", "other_test.py": ""})
    plan = discover_tests(tmp_path)
    assert plan.runner == "pytest" and plan.testpaths == ["other_test.py", "tests"]


def test_node_test_script(tmp_path: Path) -> None:
    scripts = {"test": "node --test test/"}
    _write(tmp_path, {"package.json": json.dumps({"scripts": scripts})})
    plan = discover_tests(tmp_path)
    assert plan.runner == "node" and plan.testpaths == ["test/"]


def test_other_js_runners_are_unknown(tmp_path: Path) -> None:
    for tool in ("jest", "vitest run", "mocha", "node --test && rm -rf /"):
        root = _write(
            tmp_path / tool.split()[0], {"package.json": json.dumps({"scripts": {"test": tool}})}
        )
        plan = discover_tests(root)
        assert plan.runner == "unknown" and plan.command == tool
        assert "only `node --test`" in plan.message


def test_no_tests(tmp_path: Path) -> None:
    _write(tmp_path, {"main.py": "print(1)\n"})
    plan = discover_tests(tmp_path)
    assert plan.runner == "none" and "no tests" in plan.message


def test_tests_for_changed_files(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "",
            "pkg/other.py": "",
            "tests/test_mod.py": "",  # by name
            "tests/test_imports.py": "import pkg.mod\n",
            "tests/test_from.py": "from pkg import mod\n",
            "tests/test_from_module.py": "from pkg.mod import thing\n",
            "tests/test_unrelated.py": "import pkg.other\n",
        },
    )
    plan = discover_tests(tmp_path)
    assert tests_for(plan, tmp_path, ["pkg/mod.py"]) == [
        "tests/test_from.py",
        "tests/test_from_module.py",
        "tests/test_imports.py",
        "tests/test_mod.py",
    ]
    assert tests_for(plan, tmp_path, ["README.md"]) == []
