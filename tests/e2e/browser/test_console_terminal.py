"""The terminal page: xterm.js on /ws/ide/terminal/{sid}, typed into like a person would."""

from __future__ import annotations

import re
import time
import uuid

from tests.e2e.browser.conftest import ConsolePage


def screen_lines(console: ConsolePage) -> list[str]:
    """The terminal's visible rows as text (xterm's DOM renderer draws one div per row)."""
    text = console.page.inner_text("#terminal .xterm-rows")
    return [line.replace("\xa0", " ").rstrip() for line in text.split("\n")]


def wait_for_line(console: ConsolePage, pattern: str, timeout_s: float = 15) -> list[str]:
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = screen_lines(console)
        if any(regex.fullmatch(line) for line in lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r} on the screen:\n" + "\n".join(lines))


def size_of(console: ConsolePage) -> tuple[int, int]:
    note = console.page.locator("#size")
    return int(note.get_attribute("data-cols") or 0), int(note.get_attribute("data-rows") or 0)


def test_typing_echo_hi_shows_hi_and_a_resize_reaches_the_shell(
    console: ConsolePage, api_key: str
) -> None:
    # Given a signed-in terminal page on a session of its own
    sid = f"t-{uuid.uuid4().hex[:8]}"
    console.sign_in(api_key, then=f"/terminal.html?sid={sid}")
    page = console.page
    page.locator("#status[data-state=open]").wait_for()
    # When typing `echo hi` and Enter
    page.click("#terminal")
    page.keyboard.type("echo hi")
    page.keyboard.press("Enter")
    # Then the shell's answer is on the screen
    wait_for_line(console, r"hi")

    # When the window gets smaller
    before = size_of(console)
    page.set_viewport_size({"width": 900, "height": 620})
    deadline = time.monotonic() + 10
    while size_of(console) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    cols, rows = size_of(console)
    assert (cols, rows) != before and cols < before[0]
    # Then the shell was told (a resize frame): stty reports the new size
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    wait_for_line(console, rf"{rows} {cols}")

    # And back to a full window (the README's screenshot), growing this time
    page.set_viewport_size({"width": 1280, "height": 800})
    deadline = time.monotonic() + 10
    while size_of(console) == (cols, rows) and time.monotonic() < deadline:
        time.sleep(0.1)
    wide, tall = size_of(console)
    assert wide > cols
    page.keyboard.type("stty size; echo \"$PWD\" | sed 's|.*/||'")
    page.keyboard.press("Enter")
    wait_for_line(console, rf"{tall} {wide}")
    wait_for_line(console, sid)
    console.screenshot("terminal")


def test_an_exit_is_shown_with_its_code_and_reconnect_starts_a_new_shell(
    console: ConsolePage, api_key: str
) -> None:
    # Given a connected terminal
    sid = f"t-{uuid.uuid4().hex[:8]}"
    console.sign_in(api_key, then=f"/terminal.html?sid={sid}")
    page = console.page
    page.locator("#status[data-state=open]").wait_for()
    # When the shell exits with 3
    page.click("#terminal")
    page.keyboard.type("exit 3")
    page.keyboard.press("Enter")
    # Then the page says so, and does not reconnect by itself
    page.locator("#status[data-state=closed]", has_text="code 3").wait_for()
    wait_for_line(console, r"\[the shell exited with code 3\]")
    page.wait_for_timeout(1500)
    assert page.get_attribute("#status", "data-state") == "closed"
    # When Reconnect is pressed, a new shell answers on the same session
    page.click("#reconnect")
    page.locator("#status[data-state=open]").wait_for()
    page.click("#terminal")
    page.keyboard.type("echo again")
    page.keyboard.press("Enter")
    wait_for_line(console, r"again")


def test_a_refused_key_is_explained_and_not_retried(console: ConsolePage) -> None:
    # Given a tab whose stored key the server does not know
    console.goto("/index.html")
    console.page.evaluate("sessionStorage.setItem('orchestrator.apiKey', 'ao_not_a_key')")
    # When the terminal connects
    console.goto("/terminal.html?sid=t-refused")
    # Then the close code is shown with what to do, and no retry follows
    console.page.locator("#status[data-state=closed]").wait_for()
    message = console.page.inner_text("#message")
    assert "4401" in message and "sign in again" in message
    console.page.wait_for_timeout(1500)
    assert console.page.get_attribute("#status", "data-state") == "closed"
