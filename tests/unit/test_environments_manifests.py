"""Which files declare a tree's dependencies, and the hash that names its environment."""

from __future__ import annotations

import json
from pathlib import Path

from common.environments.manifests import find_manifests


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PYPROJECT = """\
[project]
name = "demo"
dependencies = ["requests>=2"]
[project.optional-dependencies]
test = ["pytest-mock", "demo[extra]"]
docs = ["sphinx"]
"""


def test_python_manifests_are_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "requirements.txt": "humanize\n",
            "requirements-dev.txt": "pytest\n",
            "requirements/ci.txt": "tox\n",
            "pyproject.toml": PYPROJECT,
            "poetry.lock": "# lock\n",
        },
    )
    found = find_manifests(tmp_path)
    assert found.requirements == [
        "requirements-dev.txt",
        "requirements.txt",
        "requirements/ci.txt",
    ]
    # The project's own extras ("demo[extra]") and non-test groups are left out.
    assert found.python_requirements == ["requests>=2", "pytest-mock"]
    assert found.python_locks == ["poetry.lock"]
    assert found.kind == "python"
    assert "poetry.lock" in found.paths and "pyproject.toml" in found.paths


def test_node_manifests_are_found(tmp_path: Path) -> None:
    package = {"name": "x", "devDependencies": {"left-pad": "1.3.0"}}
    _write(tmp_path, {"package.json": json.dumps(package), "package-lock.json": "{}"})
    found = find_manifests(tmp_path)
    assert found.package_json == "package.json" and found.node_lock == "package-lock.json"
    assert found.kind == "node"


def test_nothing_to_install(tmp_path: Path) -> None:
    _write(tmp_path, {"main.py": "print(1)\n", "package.json": '{"name": "x"}'})
    assert find_manifests(tmp_path).kind == "none"


def test_hash_changes_with_content_and_is_stable(tmp_path: Path) -> None:
    _write(tmp_path, {"requirements.txt": "humanize\n", "README.md": "a"})
    first = find_manifests(tmp_path).hash
    (tmp_path / "README.md").write_text("b")  # not a manifest
    assert find_manifests(tmp_path).hash == first
    (tmp_path / "requirements.txt").write_text("humanize==4.0\n")
    assert find_manifests(tmp_path).hash != first
    (tmp_path / "requirements.txt").write_text("humanize\n")
    (tmp_path / "uv.lock").write_text("lock")  # a lock counts in the hash
    assert find_manifests(tmp_path).hash != first
