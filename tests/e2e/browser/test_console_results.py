"""The Actions page draws each action's own result in a real browser: analyze's findings
and metrics, the tests written for code, optimize's diff and timings, a migration's
diff, and a generated project whose zip is downloaded through the page."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_actions import paste_code, snap
from tests.integration.test_actions import (
    CALC_RIGHT,
    FAST,
    GENERATED,
    LIB_RIGHT,
    LIB_TEST,
    PLAN,
    SLOW,
    STILL_ONE_WRONG,
    TOTAL_TEST,
    fenced,
)
from tests.integration.test_analyze_api import COMPLEX, REVIEW

SLOW_S = 90_000  # sandbox runs (pytest, coverage, timings) on a busy 2-core machine


def test_analyze_shows_findings_by_severity_metrics_and_the_report(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a model whose review names a real line and an invented one
    ollama.script(json.dumps(REVIEW))
    console.sign_in(api_key, then="/actions.html?action=analyze")
    paste_code(console, COMPLEX)
    console.page.fill("#path", "dispatch.py")
    # When the analysis runs
    console.page.click("#run")
    # Then the summary, the findings (the model's and the measured ones) and the
    # metrics are drawn, with a link to the stored report
    findings = console.page.locator("section.findings")
    findings.wait_for(timeout=SLOW_S)
    assert "mixes routing with running commands" in console.page.locator("#result").inner_text()
    critical = findings.locator('tr[data-severity="critical"]', has_text="command built from")
    assert critical.count() == 1 and "dispatch.py:20" in critical.inner_text()
    assert findings.locator("tbody tr").count() >= 3  # bandit and radon add their own
    metrics = console.page.locator(".result-part", has_text="Metrics").inner_text()
    assert "1 files" in metrics and "functions" in metrics and "max 14" in metrics
    # And unticking a severity hides its rows
    console.page.uncheck('section.findings input[value="critical"]')
    assert critical.is_hidden()
    link = console.page.locator('a[href^="/reports.html?report="]')
    assert link.count() == 1
    snap(console, "actions-analyze")


def test_generated_tests_show_their_code_coverage_and_what_was_dropped(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a model whose first tests do not load, then keep one wrong expectation
    ollama.script("```python\nfrom calc import add\nthis is not python\n```")
    ollama.script(fenced(GENERATED))
    ollama.script(fenced(STILL_ONE_WRONG))
    console.sign_in(api_key, then="/actions.html?action=test")
    paste_code(console, CALC_RIGHT)
    console.page.fill("#path", "calc.py")
    # When tests are asked for
    console.page.click("#run")
    # Then the green tests are shown highlighted, with coverage and the dropped one
    verdict = console.page.locator(".verdict")
    verdict.wait_for(timeout=SLOW_S)
    assert verdict.get_attribute("data-verified") == "true"
    assert "2 test(s) pass with pytest" in verdict.inner_text()
    tests = console.page.locator(".result-part", has_text="Tests: test_calc.py")
    code = tests.locator(".cm-content").inner_text()
    assert "def test_adds" in code and "def test_zero" in code
    assert "test_wrong_expectation" not in code
    assert (
        "100.0% of lines" in console.page.locator(".result-part", has_text="Coverage").inner_text()
    )
    dropped = console.page.locator(".result-part", has_text="Dropped tests").inner_text()
    assert "test_calc.py::test_wrong_expectation" in dropped
    assert console.page.locator(".attempts").count() == 1
    snap(console, "actions-test")


def test_optimize_shows_the_faster_code_its_diff_and_the_timings(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given pasted code without tests: tests pinning its behaviour come first, then
    # the faster version
    ollama.script(fenced(TOTAL_TEST))
    ollama.script(fenced(FAST))
    console.sign_in(api_key, then="/actions.html?action=optimize")
    paste_code(console, SLOW)
    console.page.fill("#path", "work.py")
    console.page.select_option("#optimize-goal", "performance")
    console.page.fill("#bench-function", "total")
    console.page.fill("#bench-args", "[20000]")
    # When it runs
    console.page.click("#run")
    # Then the verified diff replaces the loop, the pinned test ran before and after,
    # and the timings say how much faster it is with the same result
    verdict = console.page.locator(".verdict")
    verdict.wait_for(timeout=SLOW_S)
    assert verdict.get_attribute("data-verified") == "true"
    added = console.page.locator(".diff-table td.code.add").all_inner_texts()
    assert any("n * (n - 1) // 2" in line for line in added)
    verification = console.page.locator(".verification").inner_text()
    assert "test_work.py::test_total" in verification
    timings = json.loads(
        console.page.locator(".result-part", has_text="Timings").locator("pre").inner_text()
    )
    assert timings["same_result"] is True and timings["speedup"] > 1
    snap(console, "actions-optimize")


def test_a_migration_runs_as_a_job_and_shows_its_diff(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    py2 = 'def greet(name):\n    print "hello", name\n    return "hello " + name\n'
    py3 = 'def greet(name):\n    print("hello", name)\n    return "hello " + name\n'
    # Given Python 2 code and a model that ports it
    ollama.script(fenced(py3))
    console.sign_in(api_key, then="/actions.html?action=migrate")
    paste_code(console, py2)
    console.page.fill("#path", "greet.py")
    console.page.select_option("#migrate-preset", "python2:python3")
    # When the migration runs (always a job)
    console.page.click("#run")
    panel = console.page.locator(".job")
    panel.wait_for()
    # Then the job reaches done and the result is drawn: the banner, the diff pairing
    # the print statement with the call, and the migrated file
    verdict = console.page.locator(".verdict")
    verdict.wait_for(timeout=SLOW_S)
    assert panel.get_attribute("data-status") == "succeeded"
    assert "python2 → python3" in verdict.inner_text()
    removed = console.page.locator(".diff-table td.code.del").all_inner_texts()
    added = console.page.locator(".diff-table td.code.add").all_inner_texts()
    assert any('print "hello", name' in line for line in removed)
    assert any('print("hello", name)' in line for line in added)
    files = console.page.locator(".result-part", has_text="Files")
    assert "greet.py" in files.inner_text()
    snap(console, "actions-migrate")


def test_generate_shows_the_files_and_its_zip_downloads_through_the_page(
    console: ConsolePage, api_key: str, ollama: Any, tmp_path: Path
) -> None:
    # Given a plan of a library and its test, and the files the workers write
    ollama.script(json.dumps(PLAN))
    ollama.script(fenced(LIB_RIGHT))
    ollama.script(fenced(LIB_TEST))
    console.sign_in(api_key, then="/actions.html?action=generate")
    console.page.fill("#spec", "a greeting library with tests")
    # When the project is generated (a job)
    console.page.click("#run")
    verdict = console.page.locator(".verdict")
    verdict.wait_for(timeout=SLOW_S)
    # Then it is verified (its test ran green) and each file's checks are listed
    assert verdict.get_attribute("data-verified") == "true"
    assert "greeter: 1 passed, 0 failed" in verdict.inner_text()
    checks = console.page.locator(".verification-part").inner_text()
    assert "greeter.py" in checks and "test_greeter.py" in checks
    # And its zip, fetched with the key, downloads through the page and opens
    with console.page.expect_download() as caught:
        console.page.click("#download-zip")
    download = caught.value
    assert download.suggested_filename == "greeter.zip"
    saved = tmp_path / "greeter.zip"
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["greeter/greeter.py", "greeter/test_greeter.py"]
        assert archive.read("greeter/greeter.py").decode() == LIB_RIGHT
        assert archive.read("greeter/test_greeter.py").decode() == LIB_TEST
    snap(console, "actions-generate")
