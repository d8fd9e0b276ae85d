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


def resize(console: ConsolePage, width: int, height: int) -> tuple[int, int]:
    """Resize the window; the terminal's (cols, rows) once it changed (or after 10 s)."""
    before = size_of(console)
    console.page.set_viewport_size({"width": width, "height": height})
    deadline = time.monotonic() + 10
    while size_of(console) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    return size_of(console)


def open_terminal(console: ConsolePage, api_key: str) -> str:
    """Sign in on the terminal page of a session of its own; its sid once connected."""
    sid = f"t-{uuid.uuid4().hex[:8]}"
    console.sign_in(api_key, then=f"/terminal.html?sid={sid}")
    console.page.locator("#status[data-state=open]").wait_for()
    return sid


def run(console: ConsolePage, command: str) -> None:
    """Type ``command`` into the terminal and press Enter."""
    console.page.click("#terminal")
    console.page.keyboard.type(command)
    console.page.keyboard.press("Enter")


def test_typing_echo_hi_shows_hi_and_a_resize_reaches_the_shell(
    console: ConsolePage, api_key: str
) -> None:
    # Given a signed-in terminal page on a session of its own
    sid = open_terminal(console, api_key)
    # When typing `echo hi` and Enter
    run(console, "echo hi")
    # Then the shell's answer is on the screen
    wait_for_line(console, r"hi")

    # When the window gets smaller
    before = size_of(console)
    cols, rows = resize(console, 900, 620)
    assert (cols, rows) != before and cols < before[0]
    # Then the shell was told (a resize frame): stty reports the new size
    run(console, "stty size")
    wait_for_line(console, rf"{rows} {cols}")

    # And back to a full window (the README's screenshot), growing this time
    wide, tall = resize(console, 1280, 800)
    assert wide > cols
    run(console, "stty size; echo \"$PWD\" | sed 's|.*/||'")
    wait_for_line(console, rf"{tall} {wide}")
    wait_for_line(console, sid)
    console.screenshot("terminal")


def test_an_exit_is_shown_with_its_code_and_reconnect_starts_a_new_shell(
    console: ConsolePage, api_key: str
) -> None:
    # Given a connected terminal
    open_terminal(console, api_key)
    page = console.page
    # When the shell exits with 3
    run(console, "exit 3")
    # Then the page says so, and does not reconnect by itself
    page.locator("#status[data-state=closed]", has_text="code 3").wait_for()
    wait_for_line(console, r"\[the shell exited with code 3\]")
    page.wait_for_timeout(1500)
    assert page.get_attribute("#status", "data-state") == "closed"
    # When Reconnect is pressed, a new shell answers on the same session
    page.click("#reconnect")
    page.locator("#status[data-state=open]").wait_for()
    run(console, "echo again")
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
