"""The shared editor: two browser tabs on one document converge and see each other."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from tests.e2e.browser.conftest import ConsolePage

# The document's lines as drawn, without the other people's cursor widgets.
TEXT_JS = """() => [...document.querySelectorAll('#editor .cm-content > .cm-line')].map((line) => {
  const copy = line.cloneNode(true);
  copy.querySelectorAll('.cm-ySelectionCaret').forEach((caret) => caret.remove());
  return copy.textContent;
}).join('\\n')"""


def text_of(tab: ConsolePage) -> str:
    return str(tab.page.evaluate(TEXT_JS)).replace("\xa0", " ").replace("\u2060", "")


def wait_until_both_show(tabs: list[ConsolePage], *parts: str, timeout_s: float = 15) -> str:
    deadline = time.monotonic() + timeout_s
    texts: list[str] = []
    while time.monotonic() < deadline:
        texts = [text_of(tab) for tab in tabs]
        if len(set(texts)) == 1 and all(part in texts[0] for part in parts):
            return texts[0]
        time.sleep(0.1)
    raise AssertionError(f"the tabs did not converge on {parts!r}: {texts!r}")


def test_two_tabs_editing_one_document_converge_and_see_each_others_cursor(
    open_page: Callable[[], ConsolePage], api_key: str
) -> None:
    # Given two tabs (two sessions, the same key) on one new document
    sid = f"doc-{uuid.uuid4().hex[:8]}"
    ann, bob = open_page(), open_page()
    for tab, name in ((ann, "Ann"), (bob, "Bob")):
        tab.sign_in(api_key, then=f"/editor.html?sid={sid}")
        tab.page.locator("#editor .cm-content[data-synced=true]").wait_for()
        tab.page.fill("#user-name", name)
    # Each sees the other among the people here
    ann.page.locator("#people li", has_text="Bob").wait_for()
    bob.page.locator("#people li", has_text="Ann").wait_for()

    # When both type, the second before the first one's edit has necessarily arrived
    ann.page.click("#editor .cm-content")
    ann.page.keyboard.type("def greet(name):\n")
    bob.page.click("#editor .cm-content")
    bob.page.keyboard.press("Control+End")
    bob.page.keyboard.type("# bob was here")
    # Then both tabs show both edits, identically
    wait_until_both_show([ann, bob], "def greet(name):", "# bob was here")

    # When Ann goes on typing at the end
    ann.page.keyboard.press("Control+End")
    ann.page.keyboard.press("Enter")
    ann.page.keyboard.type('return f"hello {name}"')
    merged = wait_until_both_show([ann, bob], 'return f"hello {name}"')
    assert merged.count("# bob was here") == 1 and merged.count("def greet") == 1

    # And each tab draws the other's cursor with the other's name
    ann.page.locator("#editor .cm-ySelectionInfo", has_text="Bob").wait_for()
    bob.page.locator("#editor .cm-ySelectionInfo", has_text="Ann").wait_for()
    bob.screenshot("editor")
