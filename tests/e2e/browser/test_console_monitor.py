"""The monitoring page: charts seeded over HTTP, then moved along by the live stream."""

from __future__ import annotations

import time

import httpx

from tests.e2e.browser.conftest import ConsolePage

CHARTS = ("cpu", "memory", "latency", "queue", "cache")


def chart_state(console: ConsolePage, chart: str) -> tuple[int, str]:
    card = console.page.locator(f"#chart-{chart}")
    return int(card.get_attribute("data-points") or 0), card.get_attribute("data-last-ts") or ""


def test_the_charts_take_each_new_sample_from_the_stream(
    console: ConsolePage, api_key: str
) -> None:
    # Given a few requests, so that the latency chart has something to draw
    for _ in range(3):
        httpx.get(console.server.url + "/api/health", timeout=10)
    # When the monitoring page is open and live
    console.sign_in(api_key, then="/monitor.html")
    page = console.page
    page.locator("#status[data-state=open]").wait_for()
    for chart in CHARTS:
        page.locator(f"#chart-{chart} canvas").wait_for()
    page.wait_for_function("Number(document.querySelector('#chart-cpu').dataset.points) > 0")
    first = {chart: chart_state(console, chart) for chart in CHARTS}
    # Then a new sample arrives (one per MONITOR_INTERVAL_MS) and every chart moves on
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = {chart: chart_state(console, chart) for chart in CHARTS}
        if all(now[c][1] != first[c][1] for c in CHARTS):
            break
        time.sleep(0.2)
    for chart in CHARTS:
        points, last_ts = chart_state(console, chart)
        assert last_ts != first[chart][1], f"{chart}: no new sample drawn"
        assert float(last_ts) > float(first[chart][1])
        assert points >= first[chart][0]
    # And the tiles show the latest figures
    tiles = page.inner_text("#tiles")
    assert "CPU" in tiles and "%" in tiles
    time.sleep(2)  # a few more points for the screenshot
    console.screenshot("monitor")
