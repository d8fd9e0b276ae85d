"""Run a repository's own tests in the sandbox, with its own dependencies."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.environments.build import Environment
from common.environments.testplan import TestPlan
from common.sandbox.runners import (
    TestReport,
    check_selection,
    node_available,
    node_tests_in,
    pytest_in,
)
from common.sandbox.sandbox import Limits, Sandbox, remove_tree

# Not copied into the sandbox: VCS data, installed dependencies (the environment's
# are bound instead), caches.
_SKIPPED = shutil.ignore_patterns(".git", "node_modules", "__pycache__", ".venv")


def run_repository_tests(
    tree: Path,
    *,
    plan: TestPlan,
    environment: Environment | None,
    overlay: dict[str, str] | None = None,
    tests: list[str] | None = None,
    limits: Limits,
) -> TestReport:
    """Run the repository's tests on a copy of ``tree`` in a fresh sandbox.

    Parameters
    ----------
    tree:
        The repository on disk (not changed: the sandbox works on a copy without
        ``.git``, ``node_modules``, ``__pycache__`` and ``.venv``).
    plan:
        From :func:`~common.environments.testplan.discover_tests`.
    environment:
        From :func:`~common.environments.build.ensure_environment`: bound read-only,
        its site-packages first on PYTHONPATH, its node_modules at the copy's root;
        None: only what the server's interpreter has.
    overlay:
        Relative path -> text written over the copy (the action's changed files).
    tests:
        Test files or node ids to run; None: the plan's test paths.
    limits:
        The sandbox's limits.

    Returns
    -------
    TestReport
        Per-test outcomes; ``ran=False`` with the plan's message when the plan is
        ``"unknown"`` or ``"none"`` (or node is not installed for a node plan).

    Raises
    ------
    InvalidInput
        An overlay path or test selection leaves the tree.
    """
    if plan.runner in ("unknown", "none"):
        return TestReport(ran=False, output=plan.message)
    if plan.runner == "node" and not node_available():
        return TestReport(ran=False, output="node is not installed on this server")
    selection = check_selection(tests if tests is not None else plan.testpaths)
    scratch = Path(tempfile.mkdtemp(prefix="ao-repo-"))
    workdir = scratch / "work"
    try:
        shutil.copytree(tree, workdir, symlinks=True, ignore=_SKIPPED)
        read_only = environment.read_only if environment else []
        python_path = list(environment.python_paths) if environment else []
        if (workdir / "src").is_dir():
            # src layout: the package is importable as it would be once installed.
            python_path.append(str(workdir / "src"))
        if environment and environment.node_modules and plan.runner == "node":
            # Node looks for packages in node_modules beside and above the importing
            # file; the link leads to the read-only environment.
            os.symlink(environment.node_modules, workdir / "node_modules")
        with Sandbox(
            limits=limits, workdir=workdir, read_only=read_only, python_path=python_path
        ) as box:
            if overlay:
                box.write(overlay)
            if plan.runner == "node":
                return node_tests_in(box, selection)
            return pytest_in(box, selection)
    finally:
        remove_tree(scratch)
