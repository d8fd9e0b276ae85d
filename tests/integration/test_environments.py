"""A repository's own dependencies, installed once and used by its tests in the sandbox.

One real pip install per module (``humanize``: a small pure-Python wheel the server's
venv does not have); the tests skip, saying why, when pip cannot reach its index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.config import get_settings
from common.environments import build, environment_summary
from common.environments.build import Environment, ensure_environment, remove_environments
from common.environments.run import run_repository_tests
from common.environments.testplan import discover_tests
from common.errors import EnvironmentFailed
from common.sandbox import Limits, Sandbox, resolve_isolation

LIMITS = Limits(wall_s=120, cpu_s=60)
TEST_FILE = """\
import humanize


def test_intword():
    assert humanize.intword(1_000_000) == "1.0 million"
"""


def _pip_reaches_index() -> str | None:
    """None when pip can fetch humanize's wheel; else why not."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            + ["-d", str(Path(get_settings().DATA_DIR) / "probe-dl"), "humanize"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pip could not run: {exc}"
    if done.returncode != 0:
        return "pip cannot reach the package index: " + done.stderr.strip()[-300:]
    return None


def _tree(root: Path, requirements: str) -> Path:
    root.mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "tests").mkdir()
    (root / "tests" / "test_words.py").write_text(TEST_FILE)
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("env-data").resolve()
        patch.setenv("DATA_DIR", str(directory))
        get_settings.cache_clear()
        yield directory
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def index_reason(data_dir: Path) -> str | None:
    return _pip_reaches_index()


@pytest.fixture(scope="module")
def built(data_dir: Path, index_reason: str | None) -> tuple[Path, Environment]:
    if index_reason:
        pytest.skip(index_reason)
    tree = _tree(data_dir / "repos" / "words", "humanize\n")
    return tree, ensure_environment("p-words", tree)


@pytest.fixture
def spawns(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every installer run from now on (they still run)."""
    seen: list[list[str]] = []
    real = build._spawn

    def spy(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return real(argv, **kwargs)

    monkeypatch.setattr(build, "_spawn", spy)
    return seen


def test_tests_pass_with_the_environment(built: tuple[Path, Environment]) -> None:
    # Given a tree whose test imports a pinned package, and its environment
    tree, environment = built
    # When its own tests run in the sandbox with the environment
    report = run_repository_tests(
        tree, plan=discover_tests(tree), environment=environment, limits=LIMITS
    )
    # Then they pass
    assert report.ok, report.output
    assert [c.name for c in report.cases] == ["tests/test_words.py::test_intword"]
    assert environment.kind == "python"
    assert environment.manifests == ["requirements.txt"]


def test_tests_fail_without_the_environment(built: tuple[Path, Environment]) -> None:
    tree, _ = built
    report = run_repository_tests(tree, plan=discover_tests(tree), environment=None, limits=LIMITS)
    assert not report.ok
    assert "ModuleNotFoundError" in report.output + "".join(c.message for c in report.cases)


def test_second_call_reuses_without_pip(
    built: tuple[Path, Environment], spawns: list[list[str]]
) -> None:
    tree, environment = built
    again = ensure_environment("p-words", tree)
    assert again.path == environment.path
    assert spawns == []
    summary = environment_summary("p-words")
    assert summary is not None and summary.state == "ready"
    assert summary.hash == environment.hash and (summary.size_bytes or 0) > 0


def test_environment_is_read_only_in_the_sandbox(built: tuple[Path, Environment]) -> None:
    _, environment = built
    if resolve_isolation() != "namespace":
        pytest.skip("read-only binding needs namespace isolation; fallback only reads")
    site = environment.python_paths[0]
    with Sandbox(limits=LIMITS, read_only=environment.read_only, python_path=[site]) as box:
        run = box.run([sys.executable, "-c", f"import humanize; open({site + '/x.py'!r}, 'w')"])
    assert run.exit_code == 1
    assert "Read-only file system" in run.stderr


def test_failed_install_is_recorded_and_not_rerun(
    data_dir: Path, index_reason: str | None, spawns: list[list[str]]
) -> None:
    if index_reason:
        pytest.skip(index_reason)
    tree = _tree(data_dir / "repos" / "broken", "ao-no-such-package-zzzz==1.0\n")
    with pytest.raises(EnvironmentFailed) as first:
        ensure_environment("p-broken", tree)
    assert first.value.status == 422 and first.value.code == "environment_failed"
    assert "ao-no-such-package-zzzz" in first.value.details["installer"]
    assert first.value.details["manifests"] == ["requirements.txt"]
    assert len(spawns) == 1
    with pytest.raises(EnvironmentFailed) as second:
        ensure_environment("p-broken", tree)
    assert second.value.details["installer"] == first.value.details["installer"]
    assert len(spawns) == 1
    summary = environment_summary("p-broken")
    assert summary is not None and summary.state == "failed"
    assert "ao-no-such-package-zzzz" in (summary.error or "")


def test_installer_sees_no_server_secrets(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "33")
    env = build._installer_env(data_dir)
    assert "DATABASE_URL" not in env and "SECRET_KEY" not in env
    assert env["PIP_DEFAULT_TIMEOUT"] == "33" and env["HOME"] == str(data_dir)


def test_size_bound_evicts_older_and_remove_deletes_all(
    data_dir: Path, built: tuple[Path, Environment], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a project with one environment, and a fake older one beside it
    _, environment = built
    home = environment.path.parent
    older = home / ("0" * 64)
    (older / "site-packages").mkdir(parents=True)
    (older / "site-packages" / "big.bin").write_bytes(b"x" * 10_000)
    (older / "environment.json").write_text(json.dumps({"hash": "0" * 64, "size_bytes": 10_000}))
    os.utime(older, (1, 1))
    # When the bound is below both together and the environment is used again
    monkeypatch.setenv("ENV_MAX_BYTES", "1000")
    get_settings.cache_clear()
    try:
        build._evict(home, keep=environment.hash)
    finally:
        monkeypatch.delenv("ENV_MAX_BYTES")
        get_settings.cache_clear()
    # Then the older one is gone and the current one stays
    assert not older.exists() and environment.path.exists()
    # And remove_environments deletes everything of the project
    remove_environments("p-words")
    assert not home.exists()
    assert environment_summary("p-words") is None


NODE_TEST = """\
const test = require("node:test");
const assert = require("node:assert");
const ms = require("ms");

test("ms reads durations", () => {
  assert.strictEqual(ms("2h"), 7200000);
});
"""


def _npm_lock(root: Path) -> str | None:
    """Write package-lock.json with npm itself (it asks the registry); None, or why not."""
    import shutil

    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    try:
        done = subprocess.run(
            [npm, "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm could not run: {exc}"
    if done.returncode != 0 or not (root / "package-lock.json").is_file():
        return "npm cannot reach the registry: " + done.stderr.strip()[-300:]
    return None


def test_a_node_repository_gets_npm_ci_and_its_tests_see_node_modules(data_dir: Path) -> None:
    # Given a Node repository with a lock file, whose test requires a registry package
    tree = data_dir / "repos" / "durations"
    (tree / "test").mkdir(parents=True)
    package = {"name": "durations", "version": "1.0.0", "private": True}
    package |= {"scripts": {"test": "node --test"}, "dependencies": {"ms": "2.1.3"}}
    (tree / "package.json").write_text(json.dumps(package))
    (tree / "test" / "ms.test.js").write_text(NODE_TEST)
    reason = _npm_lock(tree)
    if reason:
        pytest.skip(reason)
    plan = discover_tests(tree)
    assert plan.runner == "node", plan
    # When its environment is built
    environment = ensure_environment("p-durations", tree)
    # Then npm ci put the locked package in the environment, not in the tree
    assert environment.node_modules is not None
    installed = json.loads((environment.node_modules / "ms" / "package.json").read_text())
    assert installed["version"] == "2.1.3"
    assert not (tree / "node_modules").exists()
    assert "package-lock.json" in environment.manifests
    # And its test passes with it, and fails without it
    report = run_repository_tests(tree, plan=plan, environment=environment, limits=LIMITS)
    assert report.ok, report.output
    assert any("ms reads durations" in c.name for c in report.cases), report.cases
    bare = run_repository_tests(tree, plan=plan, environment=None, limits=LIMITS)
    assert not bare.ok and "Cannot find module 'ms'" in bare.output + "".join(
        c.message for c in bare.cases
    )
