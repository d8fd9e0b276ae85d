"""The Actions page in a real browser: explain, a fix with its diff and verification,
a job followed to the end and reattached after a reload, and refusals explained."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.browser.conftest import ConsolePage
from tests.integration.test_actions import CALC, CALC_RIGHT, CALC_TEST, fenced

EXPLAIN_ANSWER = (
    "The function adds two numbers.\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "It is called with two integers."
)


def snap(console: ConsolePage, name: str) -> None:
    """A screenshot with the whole page in the viewport first: CodeMirror lays out an
    editor's lines only once it is on screen, and a full-page screenshot does not wait."""
    page = console.page
    size = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
    page.wait_for_timeout(300)
    console.screenshot(name)
    page.set_viewport_size(size)


def paste_code(console: ConsolePage, code: str) -> None:
    console.page.click("#code-editor .cm-content")
    console.page.keyboard.insert_text(code)


def choose(console: ConsolePage, action: str) -> None:
    console.page.select_option("#action", action)


def test_explain_shows_the_models_answer_highlighted(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a signed-in tab and a model that explains
    ollama.script(EXPLAIN_ANSWER)
    console.sign_in(api_key, then="/actions.html")
    # When explain runs on pasted code
    choose(console, "explain")
    paste_code(console, CALC)
    console.page.click("#run")
    # Then the answer is shown, its code block in a highlighted editor
    answer = console.page.locator(".explanation")
    answer.wait_for()
    assert "adds two numbers" in answer.inner_text()
    assert console.page.locator(".explanation .cm-editor .cm-line").first.is_visible()
    assert "return a + b" in answer.locator(".cm-content").inner_text()
    snap(console, "actions-explain")


def test_fix_shows_the_diff_side_by_side_and_the_verification(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a wrong add(), its failing test and a model that fixes it on the first try
    ollama.script(fenced(CALC_RIGHT))
    console.sign_in(api_key, then="/actions.html?action=fix")
    paste_code(console, CALC)
    console.page.fill("#path", "calc.py")
    console.page.fill("#fix-test", CALC_TEST)
    # When the fix runs
    console.page.click("#run")
    # Then it is verified, the diff pairs the old line with the new, and the test's
    # outcome before and after is listed
    verdict = console.page.locator(".verdict")
    verdict.wait_for(timeout=60_000)
    assert verdict.get_attribute("data-verified") == "true"
    removed = console.page.locator(".diff-table td.code.del").first.inner_text()
    added = console.page.locator(".diff-table td.code.add").first.inner_text()
    assert "return a - b" in removed and "return a + b" in added
    verification = console.page.locator(".verification").inner_text()
    assert "test_add" in verification and "Attempts:" in verification
    rows = console.page.locator(".verification tbody tr", has_text="test_add")
    assert "fail" in rows.first.inner_text() and "pass" in rows.first.inner_text()
    snap(console, "actions-fix")


def test_a_job_runs_to_done_and_a_reload_reattaches(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a fix run as a job, with a model slow enough to reload while it works
    ollama.script(fenced(CALC_RIGHT), delay_first_s=2.5)
    console.sign_in(api_key, then="/actions.html?action=fix")
    paste_code(console, CALC)
    console.page.fill("#path", "calc.py")
    console.page.fill("#fix-test", CALC_TEST)
    console.page.click("details.options summary")
    console.page.check("#opt-async")
    console.page.click("#run")
    # When the job is shown, and the page is reloaded while it runs
    console.page.locator(".job").wait_for()
    console.page.wait_for_url("**/actions.html?*job=*")
    job_id = console.page.locator(".job").get_attribute("data-job-id")
    console.page.reload()
    # Then the reloaded page reattaches to the same job and follows it to 100 %
    panel = console.page.locator(f'.job[data-job-id="{job_id}"]')
    panel.wait_for()
    console.page.locator(".verdict[data-verified=true]").wait_for(timeout=60_000)
    assert panel.get_attribute("data-status") == "succeeded"
    assert panel.locator("progress").get_attribute("data-percent") == "100"
    snap(console, "actions-job")
    # And the Jobs page lists it as done
    console.goto("/jobs.html")
    row = console.page.locator(f'.job[data-job-id="{job_id}"]')
    row.wait_for()
    console.page.wait_for_selector(f'.job[data-job-id="{job_id}"][data-status="succeeded"]')
    console.screenshot("jobs")


def test_a_revoked_key_and_a_rate_limit_are_explained(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    from common.auth import revoke_key, split_key
    from common.stores.postgres import get_postgres

    console.sign_in(api_key, then="/actions.html")
    choose(console, "explain")
    paste_code(console, CALC)
    # Given the server answers 429 with Retry-After (the limit itself is tested over HTTP)
    console.page.route(
        "**/api/explain",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "17", "Content-Type": "application/json"},
            body=json.dumps({"error": {"code": "rate_limited", "message": "slow down"}}),
        ),
    )
    console.page.click("#run")
    message = console.page.locator("#message")
    message.wait_for()
    assert "Too many requests" in message.inner_text() and "17 s" in message.inner_text()
    console.page.unroute("**/api/explain")
    # Given the key is revoked: the real server refuses it
    prefix = split_key(api_key)
    assert prefix is not None
    revoke_key(store=get_postgres(), prefix=prefix)
    console.page.click("#run")
    console.page.wait_for_function(
        "document.getElementById('message').textContent.includes('refused')"
    )
    console.screenshot("actions-refused")
