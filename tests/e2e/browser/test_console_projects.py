"""The Projects page in a real browser: create a project, upload an archive in chunks
(one dropped on the way and resumed) with the progress bar reaching 100 %, see the tree."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_actions import snap


def small_archive(path: Path) -> Path:
    buffer = io.BytesIO()
    # Stored, not deflated: a few KB, so 1 KB chunks make several requests.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("shop/app.py", "def total(prices):\n    return sum(prices)\n" * 40)
        archive.writestr("shop/tests/test_app.py", "from shop.app import total\n" * 50)
        archive.writestr("README.md", "# Shop\n" + "A small shop.\n" * 60)
    path.write_bytes(buffer.getvalue())
    return path


def test_an_archive_uploads_in_chunks_resumes_and_shows_its_tree(
    console: ConsolePage, api_key: str, tmp_path: Path
) -> None:
    archive = small_archive(tmp_path / "shop.zip")
    assert archive.stat().st_size > 3 * 1024
    console.sign_in(api_key, then="/projects.html")
    # Given a new project
    console.page.fill("#project-name", "shop")
    console.page.click("#create button[type=submit]")
    console.page.locator("#project-title", has_text="shop").wait_for()
    # And a connection that drops during the second chunk
    puts: list[str] = []

    def drop_second(route: Any) -> None:
        puts.append(route.request.headers.get("content-range", ""))
        if len(puts) == 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    console.page.route(
        "**/api/projects/*/uploads/*",
        lambda route: drop_second(route) if route.request.method == "PUT" else route.continue_(),
    )
    # When the archive is uploaded in 1 KB chunks
    console.page.set_input_files("#upload-file", str(archive))
    console.page.fill("#chunk-kb", "1")
    console.page.click("#upload-start")
    # Then the progress bar reaches 100 % and the upload completes, the dropped chunk
    # sent again from where the server stood
    console.page.wait_for_selector('#upload-progress .progress[data-state="complete"]')
    assert console.page.locator("#upload-progress progress").get_attribute("data-percent") == "100"
    assert len(puts) >= 4 and puts[1] == puts[2], puts
    # And the tree shows the unpacked files
    tree = console.page.locator("#tree")
    tree.locator('li.file[data-path="shop/tests/test_app.py"]').wait_for()
    assert tree.locator('li.file[data-path="README.md"]').count() == 1
    assert "3 files" in console.page.locator("#project-facts").inner_text()
    snap(console, "projects")
