"""The Reports page in a real browser: a security scan as a table filtered by severity
with its SARIF downloadable, Figma tokens as swatches, Kubernetes manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_actions import paste_code, snap

VULNERABLE = (
    "import hashlib\n"
    "import subprocess\n\n"
    'PASSWORD = "hunter2-correct-horse"\n\n\n'
    "def run(cmd):\n"
    "    return subprocess.call(cmd, shell=True)\n\n\n"
    "def digest(data):\n"
    "    return hashlib.md5(data).hexdigest()\n"
)
DESIGN_SYSTEM = Path(__file__).resolve().parents[2] / "fixtures" / "figma" / "design_system.json"


def test_a_security_scan_is_a_table_with_a_severity_filter(
    console: ConsolePage, api_key: str, tmp_path: Path
) -> None:
    # Given vulnerable code pasted on the Reports page
    console.sign_in(api_key, then="/reports.html")
    paste_code(console, VULNERABLE)
    console.page.fill("#code-path", "app.py")
    # When it is scanned
    console.page.click("#run-code")
    table = console.page.locator(".report.security .findings table")
    table.wait_for(timeout=90_000)
    rows = table.locator("tbody tr")
    severities = [rows.nth(i).get_attribute("data-severity") for i in range(rows.count())]
    # Then the findings are listed, the shell=True call among the high ones
    assert "high" in severities, severities
    assert "subprocess" in table.inner_text() or "shell" in table.inner_text()
    # And unticking a severity hides its rows (and only those)
    present = sorted(set(severities))
    hidden = present[-1] if len(present) > 1 else present[0]
    console.page.uncheck(f"input[name=severity-{hidden}]")
    visible = [
        rows.nth(i).get_attribute("data-severity")
        for i in range(rows.count())
        if rows.nth(i).is_visible()
    ]
    assert hidden not in visible
    assert len(visible) == len([s for s in severities if s != hidden])
    console.page.check(f"input[name=severity-{hidden}]")
    # And the SARIF log downloads as JSON
    with console.page.expect_download() as download:
        console.page.click(".download-sarif")
    saved = tmp_path / "scan.sarif"
    download.value.save_as(saved)
    sarif = json.loads(saved.read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"]
    # And the stored report opens again by id
    report_id = console.page.locator(".report-id code").inner_text()
    console.goto(f"/reports.html?report={report_id}")
    console.page.locator(".report.security .findings table").wait_for()
    snap(console, "reports-security")


def test_figma_tokens_show_as_swatches_and_type_samples(console: ConsolePage, api_key: str) -> None:
    console.sign_in(api_key, then="/reports.html?tab=figma")
    console.page.set_input_files("#figma-file", str(DESIGN_SYSTEM))
    console.page.click("#run-figma")
    console.page.locator(".report.figma .swatch").first.wait_for(timeout=60_000)
    chip = console.page.locator(".report.figma .swatch .chip").first
    assert chip.evaluate("e => getComputedStyle(e).backgroundColor").startswith("rgb")
    assert console.page.locator(".report.figma .type-sample").count() > 0
    snap(console, "reports-figma")


def test_kubernetes_manifests_come_with_their_findings(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    console.sign_in(api_key, then="/reports.html?tab=kubernetes")
    console.page.fill("#k8s-name", "shop")
    console.page.fill("#k8s-image", "ghcr.io/acme/shop:latest")
    console.page.fill("#k8s-ports", "8080")
    console.page.uncheck("#k8s-refine")
    console.page.click("#run-kubernetes")
    view = console.page.locator(".report.kubernetes")
    view.wait_for(timeout=60_000)
    assert "Deployment/shop" in view.inner_text()
    # the :latest tag is a finding
    assert "latest" in view.locator(".findings table").inner_text()
    assert "kind: Deployment" in view.locator(".cm-content").inner_text()
    snap(console, "reports-kubernetes")
