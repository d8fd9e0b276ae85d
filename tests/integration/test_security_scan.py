"""POST /api/security/scan through the Lambda door, on real stores: the fixture
project's findings, the SARIF report kept in MongoDB and read back, the advisory
table seeded and loaded by the CLI, a job, and fixes proven in the sandbox with the
Ollama double scripted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_security_findings import SAFE_STORE, assert_valid_sarif, fixture
from tests.utils.lambda_events import invoke, response_json


def call(function: str, method: str, path: str, key: str | None, body: Any = None) -> Any:
    response = invoke(function, method, path, key, body=body)
    return response["statusCode"], response_json(response)


def scan(key: str, body: Any) -> tuple[int, Any]:
    status, answer = call("security_scan", "POST", "/api/security/scan", key, body)
    return status, answer


@pytest.fixture
def embedded(set_env: Any) -> None:
    """Index with the embedded MiniLM: the Ollama double has no embedding model."""
    set_env(EMBEDDING_PROVIDER="embedded")


def rules_at(answer: dict[str, Any], path: str, line: int) -> set[str]:
    found: set[str] = set()
    for f in answer["findings"]:
        if f["path"] == path and f["line"] == line:
            found.add(f["rule"])
            found.update(r.split(":", 1)[1] for r in f["also_reported_by"])
    return found


def test_the_vulnerable_project_is_reported_as_sarif_and_kept(api_key: str, ollama: Any) -> None:
    # Given the fixture project with known problems
    files = fixture("vulnerable")
    # When it is scanned
    status, answer = scan(api_key, {"files": files})
    # Then each problem is there with its rule and line
    assert status == 200, answer
    assert answer["kind"] == "security" and answer["files_scanned"] == len(files)
    for path, line, rule in [
        ("app/store.py", 9, "secret-aws-access-key"),
        ("app/store.py", 14, "B608"),
        ("app/store.py", 19, "B506"),
        ("app/store.py", 23, "B602"),
        ("app/store.py", 27, "B307"),
        ("app/store.py", 31, "B324"),
        ("requirements.txt", 1, "GHSA-x84v-xcm2-53pg"),
        ("requirements.txt", 2, "GHSA-8q59-q68h-6hv4"),
    ]:
        assert rule in rules_at(answer, path, line), (path, line, rule)
    summary = answer["summary"]
    assert set(summary) == {"critical", "high", "medium", "low", "info"}
    assert summary["critical"] >= 2 and summary["high"] >= 6
    assert sum(summary.values()) == answer["findings_total"]
    checks = {c["name"]: c for c in answer["checks"]}
    assert checks["bandit"]["ran"] and checks["secrets"]["ran"]
    assert "postgresql" in checks["dependencies"]["message"]
    assert "semgrep" in checks  # ran, or says why not
    assert_valid_sarif(answer["sarif"])
    assert answer["fixes"] == [] and ollama.requests_to("/api/chat") == []
    # And the same report comes back later, to this key only
    status, stored = call("reports_get", "GET", answer["report_url"], api_key)
    assert status == 200 and stored == answer
    assert stored["sarif"]["version"] == "2.1.0" and stored["summary"] == summary
    status, _ = call("reports_get", "GET", answer["report_url"], _other_key())
    assert status == 404


def test_the_advisory_table_is_seeded_and_the_cli_loads_osv_exports(
    api_key: str, tmp_path: Path
) -> None:
    from common.cli import main
    from common.security.advisories import PostgresAdvisoryStore
    from common.stores.postgres import get_postgres

    # The scan above, or this one, seeded an empty table from the shipped snapshot.
    scan(api_key, {"files": {"requirements.txt": "requests==2.19.0\n"}})
    store = PostgresAdvisoryStore(get_postgres())
    assert store.count() >= 10
    record = {
        "id": "GHSA-test-0000-0000",
        "aliases": ["CVE-2099-0001"],
        "summary": "a test advisory",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "left-pad-test"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}],
            }
        ],
        "database_specific": {"severity": "HIGH"},
    }
    (tmp_path / "osv").mkdir()
    (tmp_path / "osv" / "GHSA-test.json").write_text(json.dumps(record))

    assert main(["advisories", "load", str(tmp_path / "osv")]) == 0

    package_json = '{"dependencies": {"left-pad-test": "1.2.0"}}'
    status, answer = scan(api_key, {"files": {"package.json": package_json}})
    assert status == 200, answer
    (finding,) = answer["findings"]
    assert (finding["rule"], finding["severity"], finding["line"]) == (
        "GHSA-test-0000-0000",
        "high",
        1,
    )
    assert finding["fixed_in"] == ["1.3.0"] and "CVE-2099-0001" in finding["aliases"]


def test_async_answers_202_and_the_job_runner_stores_the_report(api_key: str, ollama: Any) -> None:
    from common.auth import authenticate
    from common.security.scan import run_job
    from common.stores.postgres import get_postgres

    body = {"code": "import yaml\nyaml.load(data)\n", "path": "cfg.py", "options": {"async": True}}
    status, accepted = scan(api_key, body)
    assert status == 202, accepted
    assert accepted["status_url"].endswith(accepted["job_id"])

    ctx = _Ctx(authenticate(api_key, store=get_postgres()).key_id)
    result = run_job(body, ctx)  # type: ignore[arg-type]

    assert "B506" in rules_at(result, "cfg.py", 2)
    assert [s for s, _ in ctx.steps] == ["load", "scan", "store", "done"]
    status, stored = call("reports_get", "GET", result["report_url"], api_key)
    assert status == 200 and stored["findings"] == result["findings"]


def test_a_whole_project_is_scanned_as_a_job_file_by_file(
    api_key: str, ollama: Any, embedded: None
) -> None:
    from common.auth import authenticate
    from common.jobs.store import get_job_store
    from common.security.scan import run_job
    from common.stores.postgres import get_postgres
    from tests.integration.test_projects_api import create, index

    # Given a stored project with a secret in one file and unsafe YAML in another
    _, created = create(api_key, "scanned")
    files = {
        "cfg.py": "import yaml\n\n\ndef read(data):\n    return yaml.load(data)\n",
        "settings.py": 'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n',
        "README.md": "# scanned\n",
    }
    assert index(api_key, created["id"], files)[0] == 200
    # When the whole project is scanned, without saying async
    status, accepted = scan(api_key, {"project_id": created["id"]})
    # Then it is a job, whose progress names each file as the scan goes through them
    assert status == 202, accepted
    job = get_job_store().get_row(uuid.UUID(accepted["job_id"]))
    assert job is not None and job["kind"] == "security_scan"
    ctx = _Ctx(authenticate(api_key, store=get_postgres()).key_id)
    result = run_job(job["input"], ctx)  # type: ignore[arg-type]
    per_file = [m for step, m in ctx.messages if step == "scan" and " files: " in m]
    assert per_file == [f"{n} of 3 files: {p}" for n, p in enumerate(sorted(files), 1)]
    assert any(m.startswith("bandit on 2 Python files") for _, m in ctx.messages)
    # And the report covers every file
    assert "B506" in rules_at(result, "cfg.py", 5)
    assert any(f["path"] == "settings.py" for f in result["findings"])
    # And async false still answers in the request
    status, answer = scan(api_key, {"project_id": created["id"], "options": {"async": False}})
    assert status == 200 and answer["findings"] == result["findings"]


def test_fixes_are_confirmed_by_the_rescan_and_the_tests(api_key: str, ollama: Any) -> None:
    # Given a model whose first answer keeps eval, and whose second answer still does
    files = {p: c for p, c in fixture("vulnerable").items() if p.endswith(".py")}
    ollama.script(f"```python\n{SAFE_STORE}```")
    ollama.script(f"```python\n{SAFE_STORE}```")
    # When fixes are asked for
    status, answer = scan(
        api_key, {"files": files, "fix": True, "max_fixes": 10, "options": {"max_attempts": 2}}
    )
    # Then every finding fixed while the tests still pass is confirmed, eval is not
    assert status == 200, answer
    by_id = {f["id"]: f for f in answer["findings"]}
    fixes = {by_id[x["finding"]]["rule"]: x for x in answer["fixes"]}
    assert fixes["B307"]["status"] == "unconfirmed"
    assert "B307 is still reported" in fixes["B307"]["reason"]
    for rule in ("B608", "B506", "B602", "B324", "secret-aws-access-key"):
        assert fixes[rule]["status"] == "confirmed", fixes[rule]
        assert "tests" in fixes[rule]["checks"] and fixes[rule]["diff"].startswith("diff --git")
    assert answer["model"]  # a failed ask carries no usage: the model is still named
    # The confirmed fixes are in the SARIF log too, still valid.
    assert_valid_sarif(answer["sarif"])
    with_fixes = [r for run in answer["sarif"]["runs"] for r in run["results"] if r.get("fixes")]
    assert with_fixes
    # The second request told the model what was still wrong.
    second = ollama.requests_to("/api/chat")[1]["json"]["messages"][-1]["content"]
    assert "B307" in second


def test_a_fix_that_breaks_a_test_is_not_confirmed(api_key: str, ollama: Any) -> None:
    # literal_eval is safe but cannot add: test_calculate fails with it.
    breaks = SAFE_STORE.replace("import hashlib\n", "import ast\nimport hashlib\n").replace(
        "return eval(expression)", "return ast.literal_eval(expression)"
    )
    files = {p: c for p, c in fixture("vulnerable").items() if p.endswith(".py")}
    ollama.script(f"```python\n{breaks}```")

    status, answer = scan(api_key, {"files": files, "fix": True, "options": {"max_attempts": 1}})

    assert status == 200, answer
    assert answer["fixes"] and all(f["status"] == "unconfirmed" for f in answer["fixes"])
    assert all("test_calculate" in f["reason"] for f in answer["fixes"])


def test_bad_input_is_a_422_naming_the_field(api_key: str) -> None:
    status, answer = scan(api_key, {"files": {"../x.py": "x = 1\n"}})

    assert status == 422 and answer["error"]["code"] == "invalid_input"
    status, answer = scan(api_key, {"code": "x = 1\n", "max_fixes": 0})
    assert status == 422


class _Ctx:
    """The part of a JobContext a runner uses."""

    def __init__(self, key_id: uuid.UUID | None) -> None:
        self.key_id = key_id
        self.job_id = uuid.uuid4()
        self.steps: list[tuple[str, float]] = []
        self.messages: list[tuple[str, str]] = []

    def progress(self, step: str, percent: float, message: str = "") -> None:
        if not self.steps or self.steps[-1][0] != step:
            self.steps.append((step, percent))
        self.messages.append((step, message))

    def raise_if_cancelled(self) -> None:
        pass


def _other_key() -> str:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    return create_key(store=get_postgres(), name="someone else").key
