"""Dependencies (SCA): what the manifests and lock files pin, checked against advisories.

Read: ``requirements*.txt`` (and ``*.txt`` under a ``requirements/`` folder),
``pyproject.toml`` (PEP 621 ``[project]`` and ``[tool.poetry]``), ``Pipfile.lock``,
``poetry.lock``, ``package.json`` and ``package-lock.json`` (lockfileVersion 1-3).

A pinned or locked version is checked as it is. A range (``>=2.0``, ``^4.17.1``) is
checked at the lowest version it admits and reported as "admits" (confidence
medium): a fresh install may well get a later one. A package the same folder's lock
file pins is checked at the locked version only. An unbounded requirement
(``requests``, ``*``) says nothing and is skipped.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from common.security.advisories import Advisory, AdvisoryStore, normalise_name
from common.security.models import Finding, Severity
from common.security.versions import (
    affected,
    fixed_versions,
    lowest_fixed_above,
    npm_lowest,
    pep440_lowest,
)

_RATED: dict[str, Severity] = {
    "critical": "critical",
    "high": "high",
    "medium": "medium",
    "low": "low",
}
LOCK_FILES = frozenset({"package-lock.json", "poetry.lock", "Pipfile.lock"})
MANIFESTS = frozenset({"pyproject.toml", "package.json"}) | LOCK_FILES


@dataclass(frozen=True)
class Dependency:
    ecosystem: str
    name: str
    version: str
    exact: bool
    path: str
    line: int | None
    spec: str

    @property
    def key(self) -> str:
        return normalise_name(self.ecosystem, self.name)


def is_manifest(path: str) -> bool:
    pure = PurePosixPath(path)
    name = pure.name
    if name in MANIFESTS:
        return True
    if name.endswith(".txt"):
        return name.startswith("requirements") or "requirements" in pure.parts[:-1]
    return False


def parse_manifest(path: str, content: str) -> list[Dependency]:
    """The dependencies ``path`` declares; a file that does not parse gives none."""
    name = PurePosixPath(path).name
    try:
        if name.endswith(".txt"):
            return _requirements(path, content)
        if name == "pyproject.toml":
            return _pyproject(path, content)
        if name == "poetry.lock":
            return _poetry_lock(path, content)
        if name == "Pipfile.lock":
            return _pipfile_lock(path, content)
        if name == "package.json":
            return _package_json(path, content)
        if name == "package-lock.json":
            return _package_lock(path, content)
    except (ValueError, TypeError, KeyError, AttributeError):
        # A broken manifest is the developer's to see in their tools; the scan goes on.
        return []
    return []


def _line_of(content: str, needle: str) -> int | None:
    index = content.find(needle)
    return None if index < 0 else content.count("\n", 0, index) + 1


def _pypi(path: str, line: int | None, name: str, spec: str) -> Dependency | None:
    found = pep440_lowest(spec) if spec else None
    if found is None:
        return None
    version, exact = found
    return Dependency("PyPI", name, version, exact, path, line, spec)


def _requirement(path: str, line: int | None, text: str) -> Dependency | None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    if requirement.url:
        return None
    spec = str(requirement.specifier)
    return _pypi(path, line, requirement.name, spec)


def _requirements(path: str, content: str) -> list[Dependency]:
    out = []
    for number, raw in enumerate(content.splitlines(), 1):
        text = raw.split(" #", 1)[0].strip()
        if not text or text.startswith(("#", "-", "git+", "http:", "https:", "file:")):
            continue
        found = _requirement(path, number, text)
        if found is not None:
            out.append(found)
    return out


def _pyproject(path: str, content: str) -> list[Dependency]:
    data = tomllib.loads(content)
    out: list[Dependency] = []
    project = data.get("project") or {}
    lines: list[str] = list(project.get("dependencies") or [])
    for group in (project.get("optional-dependencies") or {}).values():
        lines += list(group or [])
    for text in lines:
        found = _requirement(path, _line_of(content, f'"{text}"'), str(text))
        if found is not None:
            out.append(found)
    poetry = (data.get("tool") or {}).get("poetry") or {}
    tables = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    tables += [(g or {}).get("dependencies") or {} for g in (poetry.get("group") or {}).values()]
    for table in tables:
        for name, value in table.items():
            if name.lower() == "python":
                continue
            spec = value.get("version", "") if isinstance(value, dict) else str(value)
            found = _pypi(path, _line_of(content, f"{name} ="), name, spec.strip())
            if found is not None:
                out.append(found)
    return out


def _poetry_lock(path: str, content: str) -> list[Dependency]:
    data = tomllib.loads(content)
    out = []
    for package in data.get("package", []) or []:
        name, version = package.get("name"), package.get("version")
        if name and version:
            line = _line_of(content, f'name = "{name}"')
            out.append(Dependency("PyPI", name, version, True, path, line, f"=={version}"))
    return out


def _pipfile_lock(path: str, content: str) -> list[Dependency]:
    data = json.loads(content)
    out = []
    for section in ("default", "develop"):
        for name, value in (data.get(section) or {}).items():
            version = str((value or {}).get("version", ""))
            if version.startswith("=="):
                line = _line_of(content, f'"{name}"')
                out.append(Dependency("PyPI", name, version[2:], True, path, line, version))
    return out


def _package_json(path: str, content: str) -> list[Dependency]:
    data = json.loads(content)
    out = []
    for section in (
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
    ):
        for name, spec in (data.get(section) or {}).items():
            if not isinstance(spec, str):
                continue
            version = npm_lowest(spec)
            if version is None:
                continue
            exact = re.fullmatch(r"\s*=?v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?\s*", spec) is not None
            line = _line_of(content, f'"{name}"')
            out.append(Dependency("npm", name, version, exact, path, line, spec))
    return out


def _package_lock(path: str, content: str) -> list[Dependency]:
    data = json.loads(content)
    out = []
    packages = data.get("packages")
    if isinstance(packages, dict):
        # lockfileVersion 2 and 3: "node_modules/a/node_modules/b" -> b.
        for key, value in packages.items():
            if not key or not isinstance(value, dict) or "node_modules/" not in key:
                continue
            name = key.rsplit("node_modules/", 1)[1]
            version = value.get("version")
            if isinstance(version, str) and not value.get("link"):
                line = _line_of(content, f'"{key}"')
                out.append(Dependency("npm", name, version, True, path, line, version))
        return out

    def walk(deps: dict[str, object]) -> None:
        # lockfileVersion 1: nested "dependencies".
        for name, value in deps.items():
            if not isinstance(value, dict):
                continue
            version = value.get("version")
            if isinstance(version, str) and re.match(r"\d", version):
                line = _line_of(content, f'"{name}"')
                out.append(Dependency("npm", name, version, True, path, line, version))
            nested = value.get("dependencies")
            if isinstance(nested, dict):
                walk(nested)

    walk(data.get("dependencies") or {})
    return out


def collect_dependencies(files: dict[str, str]) -> list[Dependency]:
    """Every dependency of every manifest in ``files``; ranges a sibling lock pins dropped."""
    deps: list[Dependency] = []
    for path in sorted(files):
        if is_manifest(path):
            deps += parse_manifest(path, files[path])
    locked = {
        (str(PurePosixPath(d.path).parent), d.ecosystem, d.key)
        for d in deps
        if PurePosixPath(d.path).name in LOCK_FILES
    }
    # What the sibling lock file pins is what gets installed: the manifest's line
    # for the same package would repeat or contradict it.
    return [
        d
        for d in deps
        if PurePosixPath(d.path).name in LOCK_FILES
        or (str(PurePosixPath(d.path).parent), d.ecosystem, d.key) not in locked
    ]


def check_dependencies(
    deps: Iterable[Dependency],
    store: AdvisoryStore,
    *,
    extra: Iterable[Advisory] = (),
) -> list[Finding]:
    """A finding per dependency and advisory that affects its version.

    ``extra`` are advisories from elsewhere (OSV.dev online); one that is the same
    advisory as a stored one (shared id or alias) is counted once.
    """
    deps = list(deps)
    by_ecosystem: dict[str, set[str]] = {}
    for d in deps:
        by_ecosystem.setdefault(d.ecosystem, set()).add(d.key)
    known: dict[tuple[str, str], list[Advisory]] = {}
    for ecosystem, names in by_ecosystem.items():
        for advisory in store.lookup(ecosystem, names):
            known.setdefault((ecosystem, advisory.package), []).append(advisory)
    for advisory in extra:
        listed = known.setdefault((advisory.ecosystem, advisory.package), [])
        if not any(advisory.ids() & a.ids() for a in listed):
            listed.append(advisory)
    findings: list[Finding] = []
    for dep in deps:
        for advisory in known.get((dep.ecosystem, dep.key), []):
            if not affected(dep.version, dep.ecosystem, advisory.ranges, advisory.versions):
                continue
            findings.append(_finding(dep, advisory))
    return findings


def _finding(dep: Dependency, advisory: Advisory) -> Finding:
    fixed = fixed_versions(advisory.ranges)
    target = lowest_fixed_above(dep.version, dep.ecosystem, fixed)
    cves = ", ".join(advisory.cves)
    named = f"{advisory.advisory_id}{f' ({cves})' if cves else ''}"
    severity: Severity = _RATED.get(advisory.severity, "medium")
    if dep.exact:
        what = f"{dep.name} {dep.version} is affected by {named}: {advisory.summary}"
    else:
        # Which version a range installs is not known here: worth a look, not an alarm.
        what = (
            f"{dep.name} {dep.spec} admits affected versions (from {dep.version}) of"
            f" {named}, rated {severity} at those versions: {advisory.summary}"
        )
        severity = "low"
    recommendation = (
        f"upgrade {dep.name} to {target} or later"
        if target
        else f"no fixed version of {dep.name} is known: replace it or mitigate"
    )
    return Finding(
        tool="dependencies",
        rule=advisory.advisory_id,
        severity=severity,
        path=dep.path,
        line=dep.line,
        title=f"Vulnerable dependency {dep.name} {dep.version}",
        message=what.rstrip(".") + ".",
        recommendation=recommendation + ".",
        confidence="high" if dep.exact else "low",
        cwe=None,
        package=dep.name,
        version=dep.version,
        ecosystem=dep.ecosystem,
        aliases=advisory.aliases,
        fixed_in=fixed,
        snippet=dep.spec,
    )


def pin_target(findings: Iterable[Finding]) -> str | None:
    """The version that ends every one of ``findings`` (one package's): the highest of
    their first fixed versions; None when one of them has no fix."""
    from common.security.versions import key_for

    targets: list[str] = []
    ecosystem = "PyPI"
    for finding in findings:
        ecosystem = finding.ecosystem or ecosystem
        if not finding.version:
            return None
        target = lowest_fixed_above(finding.version, ecosystem, finding.fixed_in)
        if target is None:
            return None
        targets.append(target)
    if not targets:
        return None
    return max(targets, key=key_for(ecosystem))


def pin_fix(
    path: str, content: str, *, package: str, version: str, line: int, target: str
) -> str | None:
    """``content`` with ``package==version`` on ``line`` pinned to ``target``, when the
    file is a requirements file that pins it so; None otherwise."""
    if not PurePosixPath(path).name.endswith(".txt"):
        return None
    lines = content.splitlines(keepends=True)
    index = line - 1
    if not 0 <= index < len(lines):
        return None
    pattern = re.compile(
        rf"^(\s*{re.escape(package)}(?:\[[^\]]*\])?\s*)==\s*{re.escape(version)}(?![\w.])",
        re.I,
    )
    replaced = pattern.sub(rf"\g<1>=={target}", lines[index], count=1)
    if replaced == lines[index]:
        return None
    lines[index] = replaced
    return "".join(lines)
