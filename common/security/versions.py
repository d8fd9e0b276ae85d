"""Versions, OSV ranges and CVSS: is version V of a package affected by an advisory?

PyPI versions compare by PEP 440 (``packaging``); npm versions by SemVer 2.0
(precedence as in semver.org section 11: numbers numerically, a pre-release below
its release, build metadata ignored). An OSV ``affected`` entry holds ranges of
``events`` (``introduced``, ``fixed``, ``last_affected``, ``limit``) read in
version order, and a list of explicitly affected ``versions``; a safety-db entry
imported by ``advisories load safety-db`` keeps its PEP 440 specifiers as a range of
type ``PEP440`` (the one non-OSV type here: converting them to events would lose
what a specifier like ``>0,<0`` means).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

Key = Callable[[str], Any]

# -- SemVer -----------------------------------------------------------------------

_SEMVER = re.compile(
    r"^\s*v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\s*$"
)


def semver_key(version: str) -> tuple[Any, ...]:
    """A sort key with SemVer precedence; missing minor/patch count as 0.

    Raises
    ------
    ValueError
        ``version`` is not a version (``latest``, a git URL...).
    """
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"not a semantic version: {version!r}")
    core = tuple(int(match.group(g) or 0) for g in ("major", "minor", "patch"))
    pre = match.group("pre")
    if pre is None:
        # A release sorts after every pre-release of the same core.
        return (*core, 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*core, 0, parts)


def pypi_key(version: str) -> Any:
    """A PEP 440 sort key (a ``packaging`` Version).

    Raises
    ------
    ValueError
        Not a PEP 440 version.
    """
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion as exc:
        raise ValueError(f"not a PEP 440 version: {version!r}") from exc


def key_for(ecosystem: str) -> Key:
    return pypi_key if ecosystem == "PyPI" else semver_key


# -- OSV ranges ---------------------------------------------------------------------


def affected(
    version: str, ecosystem: str, ranges: Sequence[dict[str, Any]], versions: Sequence[str] = ()
) -> bool:
    """Whether ``version`` falls in an OSV ``affected`` entry of ``ecosystem``.

    Parameters
    ----------
    ranges:
        OSV ranges: ``{"type": "ECOSYSTEM"|"SEMVER", "events": [...]}``, or
        ``{"type": "PEP440", "specifiers": ["<2.20.0"]}`` from safety-db.
    versions:
        Versions listed as affected one by one.

    A version that cannot be parsed is not affected: the scan says nothing rather
    than guessing.
    """
    key = key_for(ecosystem)
    try:
        wanted = key(version)
    except ValueError:
        return False
    for listed in versions:
        try:
            if key(listed) == wanted:
                return True
        except ValueError:
            continue
    for entry in ranges:
        kind = entry.get("type")
        if kind == "PEP440":
            if ecosystem == "PyPI" and _in_specifiers(version, entry.get("specifiers", [])):
                return True
        elif kind in ("ECOSYSTEM", "SEMVER") and _in_events(wanted, entry.get("events", []), key):
            return True
    return False


def _in_specifiers(version: str, specifiers: Sequence[str]) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    for spec in specifiers:
        try:
            if SpecifierSet(spec).contains(version, prereleases=True):
                return True
        except InvalidSpecifier:
            continue
    return False


def _in_events(wanted: Any, events: Sequence[dict[str, str]], key: Key) -> bool:
    """OSV's evaluation: walk the events in version order, toggling "affected"."""
    parsed: list[tuple[Any, int, str]] = []
    # At one version, "fixed"/"last_affected" close what "introduced" opened.
    order = {"introduced": 0, "fixed": 1, "last_affected": 1, "limit": 2}
    for event in events:
        for kind, value in event.items():
            if kind not in order:
                continue
            if kind == "introduced" and value == "0":
                parsed.append((None, 0, kind))
                continue
            try:
                parsed.append((key(value), order[kind], kind))
            except ValueError:
                continue
    limits = [v for v, _, kind in parsed if kind == "limit"]
    if limits and all(wanted >= limit for limit in limits):
        return False
    inside = False
    # "0" (None) sorts first; at one version the opening event before the closing one.
    for value, _, kind in sorted(
        parsed, key=lambda e: (0, 0, e[1]) if e[0] is None else (1, e[0], e[1])
    ):
        if kind == "introduced":
            if value is None or wanted >= value:
                inside = True
        elif kind == "fixed":
            if wanted >= value:
                inside = False
        elif kind == "last_affected" and wanted > value:
            inside = False
    return inside


def fixed_versions(ranges: Sequence[dict[str, Any]]) -> list[str]:
    """The ``fixed`` versions named by ``ranges`` (safety-db's ``<X`` upper bounds too)."""
    found: list[str] = []
    for entry in ranges:
        for event in entry.get("events", []):
            if "fixed" in event:
                found.append(str(event["fixed"]))
        for spec in entry.get("specifiers", []):
            for part in str(spec).split(","):
                part = part.strip()
                if part.startswith("<") and not part.startswith("<="):
                    found.append(part[1:].strip())
    return list(dict.fromkeys(found))


def lowest_fixed_above(version: str, ecosystem: str, fixed: Sequence[str]) -> str | None:
    """The smallest fixed version above ``version``: the pin that ends the finding."""
    key = key_for(ecosystem)
    try:
        current = key(version)
    except ValueError:
        return None
    above = []
    for candidate in fixed:
        try:
            if key(candidate) > current:
                above.append(candidate)
        except ValueError:
            continue
    return min(above, key=key) if above else None


# -- requested ranges: the lowest version a spec admits -------------------------------

_NPM_LOWEST = re.compile(r"^\s*(?:\^|~|>=|=|v)?\s*(\d+(?:\.\d+){0,2}(?:-[0-9A-Za-z.-]+)?)")


def npm_lowest(spec: str) -> str | None:
    """The lowest version an npm range admits, when it has one (``^1.2.3`` -> 1.2.3).

    ``*``, ``latest``, tags, URLs, ``>`` bounds and alternatives (``||``) give None:
    the scan cannot tell which version would be installed.
    """
    text = spec.strip()
    if not text or "||" in text or text.startswith((">", "<")) and not text.startswith(">="):
        return None
    first = text.split()[0]
    match = _NPM_LOWEST.match(first)
    if match is None:
        return None
    version = match.group(1)
    parts = version.split("-", 1)
    numbers = parts[0].split(".")
    while len(numbers) < 3:
        numbers.append("0")
    return ".".join(numbers) + (f"-{parts[1]}" if len(parts) > 1 else "")


def pep440_lowest(specifier: str) -> tuple[str, bool] | None:
    """The version a PEP 440 specifier pins (``==``/``===``: exact) or its lowest bound
    (``>=``/``~=``/poetry's ``^``/``~``); the flag says whether it is exact."""
    text = specifier.strip()
    exact = re.fullmatch(r"===?\s*([0-9][0-9A-Za-z.+!-]*)", text)
    if exact:
        return exact.group(1), True
    lows = re.findall(r"(?:>=|~=|\^|~(?!=))\s*([0-9][0-9A-Za-z.+!-]*)", text)
    if lows:
        return lows[0], False
    bare = re.fullmatch(r"([0-9][0-9A-Za-z.+!-]*)", text)
    if bare:
        # poetry: "1.2.3" alone means exactly that version.
        return bare.group(1), True
    return None


# -- CVSS v3 -----------------------------------------------------------------------

_CVSS3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.x base score of ``vector`` (``CVSS:3.1/AV:N/AC:L/...``); None if unreadable."""
    if not vector.startswith("CVSS:3"):
        return None
    metrics = dict(part.split(":", 1) for part in vector.split("/")[1:] if ":" in part)
    try:
        scope_changed = metrics["S"] == "C"
        pr = {"N": 0.85, "L": 0.68 if scope_changed else 0.62, "H": 0.5 if scope_changed else 0.27}[
            metrics["PR"]
        ]
        w = {m: _CVSS3_WEIGHTS[m][metrics[m]] for m in _CVSS3_WEIGHTS}
    except KeyError:
        return None
    iss = 1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"])
    if scope_changed:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    else:
        impact = 6.42 * iss
    exploitability = 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
    if impact <= 0:
        return 0.0
    raw = impact + exploitability
    total = min(1.08 * raw, 10) if scope_changed else min(raw, 10)
    return _round_up(total)


def _round_up(value: float) -> float:
    # The specification's Roundup: the smallest one-decimal number >= value.
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000.0
    return (math.floor(scaled / 10000) + 1) / 10.0


def severity_of_score(score: float) -> str:
    """CVSS qualitative rating: critical >= 9, high >= 7, medium >= 4, low > 0."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "info"
