"""The web console in a real headless Chromium (Debian's package, driven by Playwright).

Playwright's own browser download is never used: ``executable_path`` points at the
machine's Chromium (``make test`` installs Debian's when it can; ``CHROMIUM_PATH``
names another). Every page's uncaught JavaScript error fails the test that saw it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.utils.server import LocalServer

# The README's pictures: rewritten only when asked (UPDATE_SCREENSHOTS=1), so a test
# run leaves the checkout clean; otherwise they go to a temporary folder, taken all
# the same (a page that cannot be drawn still fails).
README_SCREENSHOTS = Path(__file__).resolve().parents[3] / "local" / "web" / "screenshots"
DIST = Path(__file__).resolve().parents[3] / "local" / "web" / "dist"


def chromium_path() -> str | None:
    named = os.environ.get("CHROMIUM_PATH")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# Per module, not per session: while Playwright's sync API is open it keeps an asyncio
# loop running in the main thread, and the tests after the browser ones call Lambda
# handlers in-process, which run their own loop ("event loop is already running").
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium here (make test installs Debian's chromium as root)")
    if not (DIST / "index.html").is_file():
        if shutil.which("npm") is None:
            pytest.skip("no Node.js/npm here to build the web console (make web)")
        pytest.fail("the web console is not built: make web")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to run as root with its sandbox (CI runs as root).
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


class ConsolePage:
    """A browser tab on the local server, with its JavaScript errors collected."""

    def __init__(self, page: Any, server: LocalServer, screenshots: Path) -> None:
        self.page = page
        self.server = server
        self.screenshots = screenshots
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.set_default_timeout(15_000)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)

    def sign_in(self, key: str, then: str = "/actions.html") -> None:
        self.goto("/index.html?next=" + then)
        self.page.fill("#api-key", key)
        self.page.click("#signin button[type=submit]")
        # Not a glob on the URL: the sign-in page's own ?next=<then> would match it at
        # once, and the test would go on while the page is still on its way.
        wanted = urlsplit(then)
        self.page.wait_for_url(
            lambda url: (urlsplit(url).path, urlsplit(url).query) == (wanted.path, wanted.query)
        )

    def screenshot(self, name: str) -> Path:
        """Saved as ``<name>.png`` (for the README with UPDATE_SCREENSHOTS=1)."""
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        return README_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def open_page(
    browser: Any, server: LocalServer, screenshots: Path
) -> Iterator[Callable[[], ConsolePage]]:
    """``open_page()`` gives a fresh tab (its own session storage, like a new window)."""
    contexts: list[Any] = []
    pages: list[ConsolePage] = []

    def new() -> ConsolePage:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        page = ConsolePage(context.new_page(), server, screenshots)
        pages.append(page)
        return page

    yield new
    for context in contexts:
        context.close()
    errors = [e for p in pages for e in p.errors]
    assert not errors, f"JavaScript errors in the console: {errors}"


@pytest.fixture
def console(open_page: Callable[[], ConsolePage]) -> ConsolePage:
    return open_page()
