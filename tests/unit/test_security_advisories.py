"""The offline advisory database's logic: versions, OSV ranges, CVSS, manifests, pins."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from common.security.advisories import (
    Advisory,
    MemoryAdvisoryStore,
    from_osv,
    load_source,
    normalise_name,
    read_osv_source,
    safety_db_advisories,
    snapshot_advisories,
)
from common.security.sca import (
    check_dependencies,
    collect_dependencies,
    parse_manifest,
    pin_fix,
    pin_target,
)
from common.security.versions import (
    affected,
    cvss3_base_score,
    npm_lowest,
    pep440_lowest,
    semver_key,
)

OSV_REQUESTS = {
    "id": "GHSA-x84v-xcm2-53pg",
    "aliases": ["CVE-2018-18074"],
    "summary": "auth header sent over http after a redirect",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
        },
        {"package": {"ecosystem": "Maven", "name": "ignored"}, "ranges": []},
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}


# -- versions and ranges -------------------------------------------------------------


def test_semver_precedence_follows_the_specification() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2.0",
        "1.10.0",
        "2.0.0",
    ]

    shuffled = ordered[6:] + ordered[:6]
    assert sorted(shuffled, key=semver_key) == ordered
    assert semver_key("v1.2") == semver_key("1.2.0") == semver_key("1.2.0+build.5")
    with pytest.raises(ValueError):
        semver_key("latest")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1.0", False),
        ("1.0.0", True),
        ("1.2.5", True),
        ("1.2.6", False),
        ("2.0.0", True),
        ("2.3.0", True),
        ("2.3.1", False),
        ("3.0.0", False),
    ],
)
def test_osv_events_open_and_close_ranges_in_version_order(version: str, expected: bool) -> None:
    ranges = [
        {"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.6"}]},
        {"type": "SEMVER", "events": [{"introduced": "2.0.0"}, {"last_affected": "2.3.0"}]},
    ]

    assert affected(version, "npm", ranges) is expected


def test_pypi_versions_compare_by_pep_440_and_listed_versions_count() -> None:
    ranges = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}]

    assert affected("5.3", "PyPI", ranges)
    assert affected("5.4b1", "PyPI", ranges)  # a pre-release is below its release
    assert not affected("5.4", "PyPI", ranges) and not affected("6.0.1", "PyPI", ranges)
    assert affected("9.9", "PyPI", [], versions=["9.9.0"])
    assert not affected("not a version", "PyPI", ranges)
    limited = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"limit": "2.0"}]}]
    assert affected("1.0", "PyPI", limited) and not affected("2.1", "PyPI", limited)


def test_safety_db_specifiers_are_kept_as_pep_440_ranges() -> None:
    ranges = [{"type": "PEP440", "specifiers": ["<2.20.0", ">=3.0,<3.1"]}]

    assert affected("2.19.1", "PyPI", ranges) and affected("3.0.5", "PyPI", ranges)
    assert not affected("2.20.0", "PyPI", ranges) and not affected("3.1", "PyPI", ranges)


def test_cvss_v3_base_scores() -> None:
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N") == 6.1
    assert cvss3_base_score("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H") == 7.5
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N") == 0.0
    assert cvss3_base_score("AV:N/AC:L") is None


@pytest.mark.parametrize(
    ("spec", "lowest"),
    [
        ("^4.17.1", "4.17.1"),
        ("~1.2", "1.2.0"),
        (">=2.0.0 <3", "2.0.0"),
        ("4.17.15", "4.17.15"),
        ("*", None),
        ("latest", None),
        ("1.x || 2.x", None),
        ("git+https://x/y.git", None),
    ],
)
def test_the_lowest_version_an_npm_range_admits(spec: str, lowest: str | None) -> None:
    assert npm_lowest(spec) == lowest


def test_pep_440_pins_and_lower_bounds() -> None:
    assert pep440_lowest("==2.19.0") == ("2.19.0", True)
    assert pep440_lowest(">=2.0,<3") == ("2.0", False)
    assert pep440_lowest("^1.4") == ("1.4", False)  # poetry
    assert pep440_lowest("1.4.2") == ("1.4.2", True)  # poetry: exactly
    assert pep440_lowest("<3") is None


# -- records and sources -------------------------------------------------------------


def test_an_osv_record_gives_one_advisory_per_supported_package() -> None:
    (advisory,) = from_osv(OSV_REQUESTS)

    assert (advisory.ecosystem, advisory.package, advisory.advisory_id) == (
        "PyPI",
        "requests",
        "GHSA-x84v-xcm2-53pg",
    )
    assert advisory.aliases == ["CVE-2018-18074"] and advisory.cves == ["CVE-2018-18074"]
    assert (advisory.severity, advisory.score) == ("critical", 9.8)
    assert from_osv({**OSV_REQUESTS, "withdrawn": "2020-01-01"}) == []
    rated = {**OSV_REQUESTS, "database_specific": {"severity": "MODERATE"}}
    assert from_osv(rated)[0].severity == "medium"


def test_osv_exports_are_read_from_a_zip_a_folder_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "GHSA-1.json").write_text(json.dumps(OSV_REQUESTS))
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as archive:
        archive.writestr("GHSA-1.json", json.dumps(OSV_REQUESTS))
    (tmp_path / "list.json").write_text(json.dumps([OSV_REQUESTS, OSV_REQUESTS]))

    for source, count in (("dir", 1), ("all.zip", 1), ("list.json", 2)):
        assert len(list(read_osv_source(str(tmp_path / source)))) == count
    store = MemoryAdvisoryStore()
    assert load_source(str(tmp_path / "all.zip"), store) == 1 and store.count() == 1
    with pytest.raises(FileNotFoundError):
        load_source(str(tmp_path / "missing.zip"), store)


def test_safety_db_entries_become_pep_440_advisories(tmp_path: Path) -> None:
    data = {
        "$meta": {"timestamp": 1},
        "Requests": [
            {
                "id": "pyup.io-36546",
                "cve": "CVE-2018-18074",
                "specs": ["<2.20.0"],
                "advisory": "auth header leak",
                "v": "<2.20.0",
            }
        ],
    }
    path = tmp_path / "insecure_full.json"
    path.write_text(json.dumps(data))

    (advisory,) = safety_db_advisories(str(path))

    assert advisory.package == "requests" and advisory.aliases == ["CVE-2018-18074"]
    assert advisory.ranges == [{"type": "PEP440", "specifiers": ["<2.20.0"]}]
    assert affected("2.19.0", "PyPI", advisory.ranges)


def test_the_shipped_snapshot_covers_the_issue_s_examples() -> None:
    store = MemoryAdvisoryStore(snapshot_advisories())

    ids = {a.advisory_id: a for a in store.lookup("PyPI", ["requests", "PyYAML"])}
    assert "CVE-2018-18074" in ids["GHSA-x84v-xcm2-53pg"].aliases
    assert "CVE-2020-14343" in ids["GHSA-8q59-q68h-6hv4"].aliases
    assert store.lookup("npm", ["lodash", "minimist"])
    assert normalise_name("PyPI", "Foo_Bar.baz") == "foo-bar-baz"


# -- manifests -----------------------------------------------------------------------


def test_every_manifest_kind_is_read_with_its_lines() -> None:
    pyproject = (
        '[project]\ndependencies = [\n  "requests==2.19.0",\n  "click>=8",\n]\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\npyyaml = "^5.3"\n'
    )
    lock_v1 = json.dumps(
        {
            "lockfileVersion": 1,
            "dependencies": {
                "lodash": {"version": "4.17.15", "dependencies": {"minimist": {"version": "1.2.5"}}}
            },
        },
        indent=1,
    )
    poetry_lock = '[[package]]\nname = "pyyaml"\nversion = "5.3"\n'
    pipfile_lock = json.dumps({"default": {"requests": {"version": "==2.19.0"}}}, indent=1)

    got = {
        name: [(d.name, d.version, d.exact, d.line) for d in parse_manifest(name, text)]
        for name, text in {
            "requirements.txt": "# pins\nrequests==2.19.0  # old\n-r other.txt\npyyaml[x]>=5.3\n",
            "pyproject.toml": pyproject,
            "package-lock.json": lock_v1,
            "poetry.lock": poetry_lock,
            "Pipfile.lock": pipfile_lock,
        }.items()
    }

    assert got["requirements.txt"] == [("requests", "2.19.0", True, 2), ("pyyaml", "5.3", False, 4)]
    assert got["pyproject.toml"] == [
        ("requests", "2.19.0", True, 3),
        ("click", "8", False, 4),
        ("pyyaml", "5.3", False, 8),
    ]
    assert got["package-lock.json"] == [
        ("lodash", "4.17.15", True, 4),
        ("minimist", "1.2.5", True, 7),
    ]
    assert got["poetry.lock"] == [("pyyaml", "5.3", True, 2)]
    assert got["Pipfile.lock"] == [("requests", "2.19.0", True, 3)]
    assert parse_manifest("package.json", "{not json") == []


def test_a_lock_file_decides_over_its_manifest_s_range() -> None:
    files = {
        "web/package.json": '{"dependencies": {"lodash": "^4.17.1"}}',
        "web/package-lock.json": json.dumps(
            {"lockfileVersion": 3, "packages": {"node_modules/lodash": {"version": "4.17.21"}}}
        ),
        "api/package.json": '{"dependencies": {"lodash": "^4.17.1"}}',
    }

    deps = collect_dependencies(files)

    assert sorted((d.path, d.version) for d in deps) == [
        ("api/package.json", "4.17.1"),
        ("web/package-lock.json", "4.17.21"),
    ]
    findings = check_dependencies(deps, MemoryAdvisoryStore(snapshot_advisories()))
    # Only the unlocked range, reported as "admits" and low: the installed version is unknown.
    assert {(f.path, f.severity, f.confidence) for f in findings} == {
        ("api/package.json", "low", "low")
    }


def test_online_advisories_that_repeat_a_stored_one_count_once() -> None:
    stored = from_osv(OSV_REQUESTS)
    online = Advisory(
        ecosystem="PyPI",
        package="requests",
        advisory_id="PYSEC-2018-28",
        aliases=["CVE-2018-18074"],
        summary="same",
        severity="high",
        ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
    )
    deps = parse_manifest("requirements.txt", "requests==2.19.0\n")

    findings = check_dependencies(deps, MemoryAdvisoryStore(stored), extra=[online])

    assert [f.rule for f in findings] == ["GHSA-x84v-xcm2-53pg"]


def test_a_vulnerable_pin_is_moved_to_the_version_that_ends_every_advisory() -> None:
    content = "flask>=2\nrequests==2.19.0  # http\n"
    deps = parse_manifest("requirements.txt", content)
    findings = check_dependencies(deps, MemoryAdvisoryStore(snapshot_advisories()))
    on_requests = [f for f in findings if f.package == "requests"]

    target = pin_target(on_requests)
    fixed = pin_fix(
        "requirements.txt",
        content,
        package="requests",
        version="2.19.0",
        line=2,
        target=target or "",
    )

    assert target == "2.32.0"
    assert fixed == "flask>=2\nrequests==2.32.0  # http\n"
    assert (
        pin_fix(
            "package.json", content, package="requests", version="2.19.0", line=2, target="2.32.0"
        )
        is None
    )


def test_osv_dev_is_asked_online_and_its_absence_is_not_an_error() -> None:
    import httpx

    from common.security.advisories import query_osv_online

    def answer(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)
        assert asked == {"version": "2.19.0", "package": {"name": "requests", "ecosystem": "PyPI"}}
        return httpx.Response(200, json={"vulns": [OSV_REQUESTS]})

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        found, note = query_osv_online([("PyPI", "requests", "2.19.0")], client=client)
    assert [a.advisory_id for a in found] == [
        "GHSA-x84v-xcm2-53pg"
    ] and note == "OSV.dev: 1 lookups"
    assert found[0].source == "osv.dev"
    with httpx.Client(transport=httpx.MockTransport(down)) as client:
        found, note = query_osv_online([("PyPI", "requests", "2.19.0")], client=client)
    assert found == [] and "not reachable (ConnectError)" in note
