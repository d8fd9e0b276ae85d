"""The Projects page's state of a project in a real browser: its Source and Index panels
as the API describes them, a re-index followed live to ready, a search with its hit,
and explain run on a file selected in the tree (with the fake model's answer)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_actions import snap

FILES = {
    "shop/cart.py": (
        "def total(prices):\n"
        '    """The sum of a cart\'s prices."""\n'
        "    return sum(prices)\n\n\n"
        "def discount(price, percent):\n"
        "    return price * (100 - percent) / 100\n"
    ),
    "shop/users.py": "def greet(name):\n    return f'hello {name}'\n",
    "README.md": "# Shop\nA small shop: carts and users.\n",
}
EXPLAIN_ANSWER = (
    "The module sums a cart's prices and applies a discount.\n\n"
    "```python\ndef total(prices):\n    return sum(prices)\n```"
)


def call(console: ConsolePage, api_key: str, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method,
        console.server.url + path,
        headers={"X-API-Key": api_key},
        timeout=60,
        **kwargs,
    )
    assert response.status_code < 300, (response.status_code, response.text)
    return response.json()


def test_a_projects_source_index_search_and_file_action(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a project whose files came in a request body and were indexed at once
    project = call(console, api_key, "POST", "/api/projects", json={"name": "shop-flow"})
    report = call(
        console, api_key, "POST", f"/api/projects/{project['id']}/index", json={"files": FILES}
    )
    assert report, report
    stored = call(console, api_key, "GET", f"/api/projects/{project['id']}")
    source, index = stored["source"], stored["index"]
    assert source["kind"] == "files" and index["state"] == "ready", stored
    assert index["chunks"] > 0, index
    # When its page is opened
    console.sign_in(api_key, then=f"/projects.html?project={project['id']}")
    page = console.page
    page.locator("#project-title", has_text="shop-flow").wait_for()
    # Then the Source panel shows the body files' digest
    source_box = page.locator("#source-facts")
    page.wait_for_selector('#source-facts[data-kind="files"]')
    assert "files" in source_box.locator('[data-fact="kind"]').inner_text()
    revision_text = source_box.locator('[data-fact="revision"]').inner_text()
    assert source["revision"][:12] in revision_text, revision_text
    # And the Index panel what the API says: ready, its revision, its chunks, its embedder
    index_box = page.locator("#index-facts")
    page.wait_for_selector('#index-facts[data-state="ready"]')
    assert index_box.locator('[data-fact="state"]').inner_text() == "ready"
    assert index["revision"][:12] in index_box.locator('[data-fact="revision"]').inner_text()
    assert index_box.locator('[data-fact="chunks"]').inner_text() == str(index["chunks"])
    if index["embedder"]:
        assert index["embedder"] in index_box.locator('[data-fact="embedder"]').inner_text()
    assert page.locator("#index-error").is_hidden()
    # And the Environment panel says whether one is built
    env_text = page.locator("#env-facts").inner_text()
    if stored.get("environment") is None:
        assert "not built" in env_text
    # When Re-index is clicked
    page.click("#reindex")
    # Then the index job's panel follows it to the end, its bar at 100 %
    job = page.locator("#index-jobs section.job")
    job.wait_for()
    page.wait_for_selector('#index-jobs section.job[data-status="succeeded"]', timeout=60_000)
    assert job.locator("progress").get_attribute("data-percent") == "100"
    # And the project is read again: the badge is back to ready
    page.wait_for_selector('#index-facts[data-state="ready"]')
    assert not page.locator("#reindex").is_disabled()
    # When the code is searched
    page.fill("#search-query", "sum of a cart's prices")
    page.click("#search-run")
    page.wait_for_selector('#search-results[data-state="loaded"]')
    # Then a hit names its file and lines, and the revision searched is shown
    hits = page.locator("#search-results .search-hit")
    assert hits.count() >= 1
    where = page.locator("#search-results .hit-where").all_inner_texts()
    assert any(w.startswith("shop/cart.py:") for w in where), where
    current = call(console, api_key, "GET", f"/api/projects/{project['id']}")["index"]
    assert current["revision"][:12] in page.locator("#search-results .search-meta").inner_text()
    # When a file is selected in the tree and explain runs on it
    ollama.script(EXPLAIN_ANSWER)
    page.locator('#tree li.file[data-path="shop/cart.py"] button.link').click()
    bar = page.locator("#file-actions")
    bar.wait_for()
    assert page.locator("#file-action-path").inner_text() == "shop/cart.py"
    page.select_option("#file-action", "explain")
    page.click("#file-run")
    # Then the model's answer is drawn by the Actions page's views
    answer = page.locator("#file-result .explanation")
    answer.wait_for(timeout=60_000)
    assert "applies a discount" in answer.inner_text()
    assert "return sum(prices)" in answer.locator(".cm-content").inner_text()
    snap(console, "projects-state")
