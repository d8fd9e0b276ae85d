"""Find a tree's dependency manifests, and hash them into an environment's identity."""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field

# Bumped when what goes into an environment changes: old environments then stop matching.
SCHEMA = "ao-env-1"
# Optional-dependency groups a repository's tests plausibly need.
TEST_EXTRAS = ("test", "tests", "dev", "testing")
_PY_LOCKS = ("poetry.lock", "uv.lock", "Pipfile.lock")
_NODE_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")
# A manifest bigger than this is not a manifest.
_MAX_BYTES = 4 * 1024 * 1024


class Manifests(BaseModel):
    """A tree's dependency manifests (paths relative to the tree) and their hash."""

    requirements: list[str] = Field(default_factory=list)  # requirements*.txt files
    pyproject: str | None = None
    python_requirements: list[str] = Field(default_factory=list)  # from pyproject.toml
    python_locks: list[str] = Field(default_factory=list)  # in the hash only
    package_json: str | None = None
    node_lock: str | None = None
    package_json_deps: dict[str, str] = Field(default_factory=dict)  # name -> version
    hash: str

    @property
    def python(self) -> bool:
        return bool(self.requirements or self.python_requirements)

    @property
    def node(self) -> bool:
        return self.package_json is not None and bool(self.package_json_deps)

    @property
    def kind(self) -> str:
        """``"python"``, ``"node"``, ``"python+node"`` or ``"none"``."""
        kinds = [k for k, has in (("python", self.python), ("node", self.node)) if has]
        return "+".join(kinds) or "none"

    @property
    def paths(self) -> list[str]:
        """Every manifest found, sorted (lock files included)."""
        found = [*self.requirements, *self.python_locks]
        found += [p for p in (self.pyproject, self.package_json, self.node_lock) if p]
        return sorted(set(found))


def find_manifests(tree: Path) -> Manifests:
    """The dependency manifests of ``tree`` and one hash over them.

    Parameters
    ----------
    tree:
        The repository's root directory.

    Returns
    -------
    Manifests
        Python ``requirements*.txt`` (top level and ``requirements/*.txt``),
        ``pyproject.toml`` (``[project].dependencies`` and the test extras), Python
        lock files (hashed only), ``package.json`` with its lock. ``hash`` is a
        sha256 over the sorted paths with their contents' hashes, the Python
        major.minor and :data:`SCHEMA`.
    """
    tree = Path(tree)
    requirements = sorted(
        {
            _rel(p, tree)
            for p in [*tree.glob("requirements*.txt"), *tree.glob("requirements/*.txt")]
            if _regular(p)
        }
    )
    pyproject = "pyproject.toml" if _regular(tree / "pyproject.toml") else None
    python_requirements = _pyproject_requirements(tree / "pyproject.toml") if pyproject else []
    python_locks = [name for name in _PY_LOCKS if _regular(tree / name)]
    package_json = "package.json" if _regular(tree / "package.json") else None
    deps = _package_deps(tree / "package.json") if package_json else {}
    node_lock = next((n for n in _NODE_LOCKS if _regular(tree / n)), None) if package_json else None
    paths = sorted(
        set(requirements + python_locks)
        | {p for p in (pyproject, package_json, node_lock) if p is not None}
    )
    digest = hashlib.sha256()
    digest.update(f"{SCHEMA}\0python{sys.version_info.major}.{sys.version_info.minor}\0".encode())
    for rel in paths:
        content = hashlib.sha256((tree / rel).read_bytes()).hexdigest()
        digest.update(f"{rel}\0{content}\0".encode())
    return Manifests(
        requirements=requirements,
        pyproject=pyproject,
        python_requirements=python_requirements,
        python_locks=python_locks,
        package_json=package_json,
        node_lock=node_lock,
        package_json_deps=deps,
        hash=digest.hexdigest(),
    )


def _rel(path: Path, tree: Path) -> str:
    return path.relative_to(tree).as_posix()


def _regular(path: Path) -> bool:
    # Never follow a symlink out of the repository; never read a huge file.
    return path.is_file() and not path.is_symlink() and path.stat().st_size <= _MAX_BYTES


def _pyproject_requirements(path: Path) -> list[str]:
    """``[project].dependencies`` plus the test extras: requirement strings only (the
    project itself is not installed: its source is in the tree)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    project = data.get("project")
    if not isinstance(project, dict):
        return []
    found: list[str] = []
    deps = project.get("dependencies")
    if isinstance(deps, list):
        found += [d for d in deps if isinstance(d, str)]
    extras = project.get("optional-dependencies")
    if isinstance(extras, dict):
        for name in TEST_EXTRAS:
            group = extras.get(name)
            if isinstance(group, list):
                found += [d for d in group if isinstance(d, str)]
    own = str(project.get("name", "")).lower().replace("_", "-")
    # "mypkg[test]" in its own extras means the project itself: leave it out.
    kept = [d for d in found if not own or not _names(d, own)]
    return list(dict.fromkeys(d.strip() for d in kept if d.strip()))


def _names(requirement: str, name: str) -> bool:
    head = requirement.strip().lower().replace("_", "-")
    for stop in "[<>=!~;@ (":
        head = head.split(stop, 1)[0]
    return head == name


def _package_deps(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    deps: dict[str, str] = {}
    for key in ("dependencies", "devDependencies"):
        group = data.get(key)
        if isinstance(group, dict):
            deps.update({str(k): str(v) for k, v in group.items()})
    return deps
