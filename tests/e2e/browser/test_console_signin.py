"""Signing in to the web console: a refused key is explained, a good one is kept."""

from __future__ import annotations

from tests.e2e.browser.conftest import ConsolePage


def test_a_refused_key_says_so_and_is_not_kept(console: ConsolePage) -> None:
    console.goto("/")
    console.page.fill("#api-key", "ao_wrong_key")
    console.page.click("#signin button[type=submit]")
    alert = console.page.locator("#message")
    alert.wait_for()
    assert "refused" in alert.inner_text()
    assert console.page.evaluate("sessionStorage.length") == 0
    console.screenshot("signin")


def test_a_good_key_opens_the_page_asked_for(console: ConsolePage, api_key: str) -> None:
    console.sign_in(api_key, then="/actions.html")
    assert console.page.evaluate("sessionStorage.getItem('orchestrator.apiKey')") == api_key
