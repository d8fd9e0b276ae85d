"""How a repository runs its own tests, read from its configuration (never by running
anything), and which of its tests touch given files."""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

Runner = Literal["pytest", "node", "unknown", "none"]

# Directories never searched for tests: dependencies, build output, VCS data.
_SKIPPED = {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", "build", "dist"}
_PY_TEST = re.compile(r"^(test_.*|.*_test)\.py$")
_JS_TEST = re.compile(r"^(.*[.\-_])?test\.(c|m)?js$|^test\.(c|m)?js$")
# Files looked at, at most: a huge tree is not walked to the end.
_MAX_FILES = 20_000


class TestPlan(BaseModel):
    """What runs a repository's tests: ``runner``, the command found in its
    configuration, the test paths, and a sentence for a human."""

    __test__ = False  # a model, not something for pytest to collect

    runner: Runner
    command: str | None = None
    testpaths: list[str] = Field(default_factory=list)
    message: str = ""


def discover_tests(tree: Path) -> TestPlan:
    """The repository's test runner and test paths.

    Parameters
    ----------
    tree:
        The repository's root directory.

    Returns
    -------
    TestPlan
        ``"pytest"`` from ``[tool.pytest.ini_options]`` (pyproject.toml), ``pytest.ini``,
        ``setup.cfg [tool:pytest]``, ``tox.ini [pytest]``, or Python test files by
        name; else ``"node"`` when package.json's ``scripts.test`` is ``node --test``;
        ``"unknown"`` for any other test script (jest, vitest, mocha...: package.json
        scripts are not run); ``"none"`` when no test is found.
    """
    tree = Path(tree)
    configured = _pytest_config(tree)
    python_files = _files(tree, _PY_TEST)
    if configured is not None:
        source, paths = configured
        paths = [p for p in paths if (tree / p).exists()] or paths
        return TestPlan(
            runner="pytest",
            command="python -m pytest" + "".join(f" {p}" for p in paths),
            testpaths=paths,
            message=f"pytest, configured in {source}",
        )
    script = _test_script(tree)
    if script is not None:
        node = _node_test(script)
        if node is not None:
            return TestPlan(
                runner="node",
                command=script,
                testpaths=node,
                message="node --test, from package.json scripts.test",
            )
        if not python_files:
            tool = shlex.split(script)[0] if script.strip() else "?"
            return TestPlan(
                runner="unknown",
                command=script,
                message=(
                    f"package.json's test script ({script!r}) runs {tool}, which this server "
                    "does not run: only `node --test` is supported (package.json scripts "
                    "can run anything)"
                ),
            )
    if python_files:
        paths = _top_dirs(python_files)
        return TestPlan(
            runner="pytest",
            command="python -m pytest",
            testpaths=paths,
            message=f"pytest, {len(python_files)} test file(s) found by name",
        )
    js_files = _files(tree, _JS_TEST)
    if js_files and script is None:
        return TestPlan(
            runner="node",
            command="node --test",
            testpaths=[],
            message=f"node --test, {len(js_files)} test file(s) found by name",
        )
    return TestPlan(
        runner="none",
        message="no tests found: no pytest configuration, test_*.py files, or test script",
    )


def tests_for(plan: TestPlan, tree: Path, changed: list[str]) -> list[str]:
    """The repository's test files that touch a changed file.

    A test touches ``pkg/mod.py`` when it imports ``pkg.mod`` (or ``mod``: tests
    often put the source directory on the path), imports from it
    (``from pkg.mod import x``, ``from pkg import mod``), or is named ``test_mod.py``.
    JavaScript tests: when they ``require``/``import`` a path ending in the file's
    stem.

    Parameters
    ----------
    plan:
        From :func:`discover_tests`; ``"unknown"``/``"none"`` plans have no tests to pick.
    tree:
        The repository's root directory.
    changed:
        Paths relative to ``tree``.

    Returns
    -------
    list[str]
        Test file paths relative to ``tree``, sorted; a changed test file is included.
    """
    tree = Path(tree)
    if plan.runner in ("unknown", "none"):
        return []
    pattern = _PY_TEST if plan.runner == "pytest" else _JS_TEST
    candidates = _files(tree, pattern)
    chosen: set[str] = set()
    for rel in changed:
        pure = PurePosixPath(rel)
        if pure.as_posix() in candidates:
            chosen.add(pure.as_posix())
        if plan.runner == "pytest" and pure.suffix == ".py":
            names = _module_names(pure)
            for test in candidates:
                if PurePosixPath(test).name == f"test_{pure.stem}.py" or _imports(
                    tree / test, names
                ):
                    chosen.add(test)
        elif plan.runner == "node" and pure.suffix in (".js", ".mjs", ".cjs"):
            stem = re.escape(pure.with_suffix("").name)
            quoted = rf"""['"][^'"]*\b{stem}(\.[cm]?js)?['"]"""
            uses = re.compile(rf"(require\(|from\s+|import\s*\()\s*{quoted}")
            for test in candidates:
                if uses.search(_read(tree / test)):
                    chosen.add(test)
    return sorted(chosen)


# Its name starts with "test": not something for pytest to collect where it is imported.
tests_for.__test__ = False  # type: ignore[attr-defined]


# -- Python configuration ----------------------------------------------------------


def _pytest_config(tree: Path) -> tuple[str, list[str]] | None:
    pyproject = tree / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
        options = data.get("tool", {}).get("pytest", {}).get("ini_options")
        if isinstance(options, dict):
            paths = options.get("testpaths", [])
            if isinstance(paths, str):
                paths = paths.split()
            return "pyproject.toml", [str(p) for p in paths if isinstance(p, str)]
    for name, section in (("pytest.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        found = _ini_testpaths(tree / name, section)
        if found is not None:
            return name, found
    found = _ini_testpaths(tree / "tox.ini", "pytest")
    if found is not None:
        return "tox.ini", found
    return None


def _ini_testpaths(path: Path, section: str) -> list[str] | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    if not parser.has_section(section):
        return None
    return parser.get(section, "testpaths", fallback="").split()


def _files(tree: Path, pattern: re.Pattern[str]) -> list[str]:
    found: list[str] = []
    seen = 0
    stack = [tree]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > _MAX_FILES:
                return sorted(found)
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in _SKIPPED and not entry.name.startswith("."):
                    stack.append(entry)
            elif pattern.match(entry.name):
                found.append(entry.relative_to(tree).as_posix())
    return sorted(found)


def _top_dirs(files: list[str]) -> list[str]:
    """The fewest paths covering ``files``: their first directories (or the files at
    the top level)."""
    return sorted({f.split("/", 1)[0] for f in files})


def _module_names(path: PurePosixPath) -> set[str]:
    parts = list(path.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    names = {".".join(parts[i:]) for i in range(len(parts))}
    return {n for n in names if n}


def _imports(test: Path, names: set[str]) -> bool:
    try:
        module = ast.parse(_read(test))
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            if any(alias.name in names for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module in names:
                return True
            if any(f"{node.module}.{alias.name}" in names for alias in node.names):
                return True
    return False


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# -- JavaScript --------------------------------------------------------------------


def _test_script(tree: Path) -> str | None:
    path = tree / "package.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or "no test specified" in script:
        return None
    return script.strip()


def _node_test(script: str) -> list[str] | None:
    """The test paths of a ``node --test [options] [paths]`` script; None when the
    script is anything else (another tool, a chain of commands)."""
    if any(sep in script for sep in ("&&", "||", ";", "|", "`", "$(")):
        return None
    try:
        words = shlex.split(script)
    except ValueError:
        return None
    if len(words) < 2 or words[0] != "node" or "--test" not in words[1:]:
        return None
    return [w for w in words[1:] if not w.startswith("-")]
