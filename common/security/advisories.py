"""The offline advisory database: known-vulnerable versions of PyPI and npm packages.

Kept in PostgreSQL (table ``advisories``, migration 0003), one row per advisory and
package, with the OSV ``affected`` ranges as JSON. Loaded by
``python -m common.cli advisories load SOURCE`` where SOURCE is:

- an OSV export: a zip (``all.zip`` or an ecosystem's ``PyPI/all.zip``), a folder of
  OSV JSON files, or one JSON file (a record or a list of records);
- ``safety-db``: the ``safety_db`` package's ``insecure_full.json``, when the user has
  installed it (its data is CC BY-NC 4.0, so it is never shipped or installed here);
- ``snapshot``: the curated OSV-format file shipped in this package
  (``data/advisories.osv.json``), loaded by itself when the table is empty so a fresh
  machine has data without the network.

A scan reads the table and, if PostgreSQL is not reachable, the shipped snapshot in
memory (the report says which). OSV.dev is asked online only when the request says
so and it answers within a short timeout.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from common.logs import get_logger
from common.security.versions import cvss3_base_score, severity_of_score

if TYPE_CHECKING:
    import httpx

    from common.stores.postgres import PostgresStore

log = get_logger("security.advisories")

ECOSYSTEMS = ("PyPI", "npm")
SNAPSHOT = "advisories.osv.json"
OSV_QUERY_URL = "https://api.osv.dev/v1/query"
ONLINE_TIMEOUT_S = 2.0
ONLINE_BUDGET_S = 6.0
_GHSA_SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MODERATE": "medium", "LOW": "low"}


def normalise_name(ecosystem: str, name: str) -> str:
    """PEP 503 for PyPI (``PyYAML`` = ``pyyaml``, ``a_b`` = ``a-b``); npm names as given,
    lower-cased (npm refuses upper case in new names)."""
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.strip().lower()


@dataclass
class Advisory:
    """One advisory as it concerns one package."""

    ecosystem: str
    package: str
    advisory_id: str
    summary: str
    severity: str
    ranges: list[dict[str, Any]]
    versions: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    score: float | None = None
    source: str = "osv"
    modified: str | None = None

    @property
    def cves(self) -> list[str]:
        return [a for a in [self.advisory_id, *self.aliases] if a.startswith("CVE-")]

    def ids(self) -> set[str]:
        return {self.advisory_id, *self.aliases}


# -- OSV records --------------------------------------------------------------------


def from_osv(record: dict[str, Any], *, source: str = "osv") -> list[Advisory]:
    """The advisories of one OSV record, one per affected PyPI/npm package."""
    advisory_id = str(record.get("id", ""))
    if not advisory_id or record.get("withdrawn"):
        return []
    aliases = sorted({str(a) for a in record.get("aliases", []) or []} - {advisory_id})
    summary = str(record.get("summary") or record.get("details") or "")[:500]
    severity, score = _osv_severity(record)
    by_package: dict[tuple[str, str], Advisory] = {}
    for entry in record.get("affected", []) or []:
        package = entry.get("package") or {}
        ecosystem = str(package.get("ecosystem", "")).split(":", 1)[0]
        if ecosystem not in ECOSYSTEMS or not package.get("name"):
            continue
        name = normalise_name(ecosystem, str(package["name"]))
        entry_severity, entry_score = severity, score
        specific = (entry.get("database_specific") or {}).get("severity")
        if isinstance(specific, str) and specific.upper() in _GHSA_SEVERITY:
            entry_severity = _GHSA_SEVERITY[specific.upper()]
        advisory = by_package.setdefault(
            (ecosystem, name),
            Advisory(
                ecosystem=ecosystem,
                package=name,
                advisory_id=advisory_id,
                summary=summary,
                severity=entry_severity,
                score=entry_score,
                ranges=[],
                aliases=aliases,
                source=source,
                modified=record.get("modified"),
            ),
        )
        advisory.ranges += [
            {"type": r.get("type"), "events": r.get("events", [])}
            for r in entry.get("ranges", []) or []
            if r.get("type") in ("ECOSYSTEM", "SEMVER")
        ]
        advisory.versions += [str(v) for v in entry.get("versions", []) or []]
    return list(by_package.values())


def _osv_severity(record: dict[str, Any]) -> tuple[str, float | None]:
    score = None
    for item in record.get("severity", []) or []:
        if str(item.get("type", "")).startswith("CVSS_V3"):
            score = cvss3_base_score(str(item.get("score", "")))
            if score is not None:
                break
    specific = (record.get("database_specific") or {}).get("severity")
    if isinstance(specific, str) and specific.upper() in _GHSA_SEVERITY:
        return _GHSA_SEVERITY[specific.upper()], score
    if score is not None:
        return severity_of_score(score), score
    # No rating at all: an advisory is worth a look, not an alarm.
    return "medium", None


def read_osv_source(path: str) -> Iterator[dict[str, Any]]:
    """OSV records from a zip, a folder (recursively) or a JSON file.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    if os.path.isdir(path):
        for folder, _dirs, names in os.walk(path):
            for name in sorted(names):
                if name.endswith(".json"):
                    with open(os.path.join(folder, name), encoding="utf-8") as fh:
                        yield from _records(json.load(fh))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".json"):
                    with archive.open(member) as fh:
                        yield from _records(json.load(io.TextIOWrapper(fh, "utf-8")))
    else:
        with open(path, encoding="utf-8") as fh:
            yield from _records(json.load(fh))


def _records(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        yield from (r for r in data if isinstance(r, dict))
    elif isinstance(data, dict):
        if isinstance(data.get("vulns"), list):
            yield from (r for r in data["vulns"] if isinstance(r, dict))
        else:
            yield data


def snapshot_advisories() -> list[Advisory]:
    """The curated snapshot shipped with the package (OSV format)."""
    text = (resources.files("common.security") / "data" / SNAPSHOT).read_text(encoding="utf-8")
    out: list[Advisory] = []
    for record in _records(json.loads(text)):
        out += from_osv(record, source="snapshot")
    return out


def safety_db_advisories(path: str | None = None) -> list[Advisory]:
    """safety-db's ``insecure_full.json`` (PEP 440 specifiers kept as a ``PEP440`` range).

    Raises
    ------
    FileNotFoundError
        No path given and the ``safety_db`` package is not installed.
    """
    if path is None:
        try:
            import safety_db
        except ImportError as exc:
            raise FileNotFoundError(
                "the safety_db package is not installed (pip install safety-db; its data is"
                " CC BY-NC 4.0)"
            ) from exc
        path = os.path.join(os.path.dirname(safety_db.__file__), "insecure_full.json")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    out: list[Advisory] = []
    for name, entries in data.items():
        if name.startswith("$") or not isinstance(entries, list):
            continue
        for entry in entries:
            specs = [str(s) for s in entry.get("specs", []) if s]
            advisory_id = str(entry.get("id") or "")
            if not advisory_id or not specs:
                continue
            cve = entry.get("cve")
            out.append(
                Advisory(
                    ecosystem="PyPI",
                    package=normalise_name("PyPI", name),
                    advisory_id=advisory_id,
                    summary=str(entry.get("advisory", ""))[:500],
                    # safety-db rates nothing: a known vulnerability is worth a look.
                    severity="medium",
                    ranges=[{"type": "PEP440", "specifiers": specs}],
                    aliases=[str(c).strip() for c in str(cve).split(",")] if cve else [],
                    source="safety-db",
                )
            )
    return out


# -- stores -------------------------------------------------------------------------


class AdvisoryStore(Protocol):
    """What a scan needs of the advisory database."""

    def lookup(self, ecosystem: str, packages: Collection[str]) -> list[Advisory]: ...

    def count(self) -> int: ...

    def upsert(self, advisories: Iterable[Advisory]) -> int: ...


class MemoryAdvisoryStore:
    """Advisories held in memory: tests, and the fallback without PostgreSQL."""

    def __init__(self, advisories: Iterable[Advisory] = ()) -> None:
        self._rows: dict[tuple[str, str, str], Advisory] = {}
        self.upsert(advisories)

    def lookup(self, ecosystem: str, packages: Collection[str]) -> list[Advisory]:
        wanted = {normalise_name(ecosystem, p) for p in packages}
        return [a for (eco, pkg, _), a in self._rows.items() if eco == ecosystem and pkg in wanted]

    def count(self) -> int:
        return len(self._rows)

    def upsert(self, advisories: Iterable[Advisory]) -> int:
        n = 0
        for advisory in advisories:
            self._rows[(advisory.ecosystem, advisory.package, advisory.advisory_id)] = advisory
            n += 1
        return n


class PostgresAdvisoryStore:
    """The ``advisories`` table."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def lookup(self, ecosystem: str, packages: Collection[str]) -> list[Advisory]:
        names = sorted({normalise_name(ecosystem, p) for p in packages})
        if not names:
            return []
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT ecosystem, package, advisory_id, aliases, summary, severity, score,"
                " ranges, versions, source, modified FROM advisories"
                " WHERE ecosystem = %s AND package = ANY(%s)",
                (ecosystem, names),
            ).fetchall()
        return [
            Advisory(
                ecosystem=r["ecosystem"],
                package=r["package"],
                advisory_id=r["advisory_id"],
                summary=r["summary"],
                severity=r["severity"],
                score=r["score"],
                ranges=list(r["ranges"] or []),
                versions=list(r["versions"] or []),
                aliases=list(r["aliases"] or []),
                source=r["source"],
                modified=r["modified"],
            )
            for r in rows
        ]

    def count(self) -> int:
        with self._store.connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM advisories").fetchone()
        return int(row["n"]) if row else 0

    def upsert(self, advisories: Iterable[Advisory]) -> int:
        from psycopg.types.json import Jsonb

        n = 0
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            with self._store.connection() as conn, conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO advisories (ecosystem, package, advisory_id, aliases, summary,"
                    " severity, score, ranges, versions, source, modified)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (ecosystem, package, advisory_id) DO UPDATE SET"
                    " aliases = EXCLUDED.aliases, summary = EXCLUDED.summary,"
                    " severity = EXCLUDED.severity, score = EXCLUDED.score,"
                    " ranges = EXCLUDED.ranges, versions = EXCLUDED.versions,"
                    " source = EXCLUDED.source, modified = EXCLUDED.modified, loaded_at = now()",
                    batch,
                )
            batch.clear()

        for a in advisories:
            batch.append(
                (
                    a.ecosystem,
                    a.package,
                    a.advisory_id,
                    a.aliases,
                    a.summary,
                    a.severity,
                    a.score,
                    Jsonb(a.ranges),
                    a.versions,
                    a.source,
                    a.modified,
                )
            )
            n += 1
            if len(batch) >= 1000:
                flush()
        if batch:
            flush()
        return n


_seeded = threading.Event()


def ensure_seeded(store: AdvisoryStore) -> int:
    """Load the shipped snapshot into an empty store, once per process.

    Returns
    -------
    int
        Advisories loaded now (0 when the store already had some).
    """
    if _seeded.is_set():
        return 0
    loaded = 0
    if store.count() == 0:
        loaded = store.upsert(snapshot_advisories())
        log.info(
            "advisory database was empty: loaded the shipped snapshot", extra={"advisories": loaded}
        )
    _seeded.set()
    return loaded


def default_store() -> tuple[AdvisoryStore, str]:
    """The advisory store to use and what it is: PostgreSQL, else the snapshot in memory."""
    from common.errors import AppError

    try:
        from common.stores.postgres import get_postgres

        store: AdvisoryStore = PostgresAdvisoryStore(get_postgres())
        ensure_seeded(store)
        return store, "postgresql"
    except AppError as exc:
        log.warning(
            "advisory database unavailable: using the shipped snapshot", extra={"error": exc.code}
        )
        return MemoryAdvisoryStore(snapshot_advisories()), "snapshot (PostgreSQL unavailable)"


def load_source(source: str, store: AdvisoryStore) -> int:
    """``advisories load SOURCE``: an OSV zip/folder/file, ``safety-db`` or ``snapshot``.

    Raises
    ------
    FileNotFoundError
        The path does not exist, or safety-db is not installed.
    """
    if source == "snapshot":
        return store.upsert(snapshot_advisories())
    if source == "safety-db":
        return store.upsert(safety_db_advisories())
    if not os.path.exists(source):
        raise FileNotFoundError(source)

    def parsed() -> Iterator[Advisory]:
        for record in read_osv_source(source):
            yield from from_osv(record)

    return store.upsert(parsed())


# -- online -------------------------------------------------------------------------


def query_osv_online(
    packages: Iterable[tuple[str, str, str]],
    *,
    timeout_s: float = ONLINE_TIMEOUT_S,
    client: httpx.Client | None = None,
) -> tuple[list[Advisory], str]:
    """OSV.dev's advisories for ``(ecosystem, name, version)`` triples, when reachable.

    Never raises for the network: the first failure stops the lookups, and the
    message says what happened. ``client`` is for tests (an httpx mock transport).
    """
    import time

    import httpx

    found: list[Advisory] = []
    deadline = time.monotonic() + ONLINE_BUDGET_S
    asked = 0
    owned = client is None
    http = client or httpx.Client(timeout=timeout_s)
    try:
        for ecosystem, name, version in packages:
            if time.monotonic() > deadline:
                return found, f"OSV.dev: stopped after {asked} lookups (time budget)"
            response = http.post(
                OSV_QUERY_URL,
                json={"version": version, "package": {"name": name, "ecosystem": ecosystem}},
            )
            response.raise_for_status()
            asked += 1
            for record in response.json().get("vulns", []) or []:
                found += from_osv(record, source="osv.dev")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return found, f"OSV.dev not reachable ({type(exc).__name__}); offline data only"
    finally:
        if owned:
            http.close()
    return found, f"OSV.dev: {asked} lookups"
