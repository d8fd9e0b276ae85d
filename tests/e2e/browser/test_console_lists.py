"""The key's jobs and projects as the server lists them (GET /api/jobs, GET /api/projects),
in a real browser: not only what this tab started, filtered by status, paged."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.browser.conftest import ConsolePage
from tests.integration.test_list_api import add_job


def panels(console: ConsolePage) -> Any:
    return console.page.locator("#jobs .job")


def wait_loaded(console: ConsolePage) -> None:
    console.page.wait_for_selector('#jobs[data-state="loaded"]')


def statuses_shown(console: ConsolePage, count: int) -> list[str]:
    """The statuses of the ``count`` panels listed, once each has read its job."""
    console.page.wait_for_function(
        "n => { const all = document.querySelectorAll('#jobs .job');"
        " return all.length === n && [...all].every((p) => p.dataset.status"
        " && p.dataset.status !== 'loading'); }",
        arg=count,
    )
    return [str(p.get_attribute("data-status")) for p in panels(console).all()]


def test_the_jobs_page_lists_the_keys_jobs_filtered_by_status_and_paged(
    console: ConsolePage, api_key: str
) -> None:
    # Given 25 finished jobs of this key, none started in this tab: 20 succeeded,
    # 3 failed and 2 cancelled (the newest)
    ids = [add_job(api_key, status="succeeded", age_s=100 - i) for i in range(20)]
    failed = [add_job(api_key, status="failed", kind="fix", age_s=20 - i) for i in range(3)]
    cancelled = [add_job(api_key, status="cancelled", age_s=5 - i) for i in range(2)]
    console.sign_in(api_key, then="/jobs.html")
    # When the page opens: the newest 20, and a button for older ones
    wait_loaded(console)
    shown = statuses_shown(console, 20)
    assert shown[:5] == ["cancelled"] * 2 + ["failed"] * 3
    assert console.page.locator("#more-jobs").is_visible()
    first_ids = [p.get_attribute("data-job-id") for p in panels(console).all()]
    assert first_ids == [*cancelled[::-1], *failed[::-1], *ids[::-1][:15]]
    console.page.click("#more-jobs")
    assert statuses_shown(console, 25)[20:] == ["succeeded"] * 5
    assert console.page.locator("#more-jobs").is_hidden()
    # When "failed" is ticked: only the failed ones, with their error kind shown
    console.page.check('#status-filter input[value="failed"]')
    console.page.wait_for_url("**/jobs.html?status=failed")
    wait_loaded(console)
    assert statuses_shown(console, 3) == ["failed"] * 3
    assert all((p.get_attribute("data-job-id") in failed) for p in panels(console).all())
    # And with "cancelled" too, kept in the address across a reload
    console.page.check('#status-filter input[value="cancelled"]')
    console.page.wait_for_url("**/jobs.html?status=failed%2Ccancelled")
    console.page.reload()
    wait_loaded(console)
    assert console.page.is_checked('#status-filter input[value="failed"]')
    assert sorted(statuses_shown(console, 5)) == ["cancelled"] * 2 + ["failed"] * 3
    console.screenshot("jobs-filtered")
    # When every box is unticked: every status again
    console.page.uncheck('#status-filter input[value="failed"]')
    console.page.uncheck('#status-filter input[value="cancelled"]')
    wait_loaded(console)
    assert len(statuses_shown(console, 20)) == 20


def test_a_job_started_elsewhere_is_listed_live_and_can_be_cancelled(
    console: ConsolePage, api_key: str
) -> None:
    # Given a job of this key running on some other worker (its lease is fresh, so no
    # worker here takes it over)
    job_id = add_job(api_key, status="running", kind="noop")
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:  # a live worker's lease, an hour long
        conn.execute(
            "UPDATE jobs SET lease_until = now() + interval '1 hour', worker = 'elsewhere',"
            " attempts = 1, started_at = now() WHERE id = %s",
            (job_id,),
        )
    console.sign_in(api_key, then="/jobs.html")
    panel = console.page.locator(f'.job[data-job-id="{job_id}"]')
    panel.wait_for()
    console.page.wait_for_selector(f'.job[data-job-id="{job_id}"][data-status="running"]')
    # When Cancel is pressed: a running job is asked to stop
    panel.locator("button.cancel").click()
    console.page.wait_for_selector(f'.job[data-job-id="{job_id}"][data-status="cancelling"]')
    with get_postgres().connection() as conn:
        row = conn.execute(
            "SELECT cancel_requested_at FROM jobs WHERE id = %s", (job_id,)
        ).fetchone()
        assert row is not None and row["cancel_requested_at"] is not None
        conn.execute(  # let no worker wait for it
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL"
            " WHERE id = %s",
            (job_id,),
        )


def test_projects_of_the_key_are_listed_and_offered_on_both_pages(
    console: ConsolePage, api_key: str
) -> None:
    # Given two projects this key made over HTTP (not in this tab)
    url = console.server.url
    made = []
    for name in ("alpha", "beta"):
        response = httpx.post(
            f"{url}/api/projects", json={"name": name}, headers={"X-API-Key": api_key}
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    # When the Projects page opens
    console.sign_in(api_key, then="/projects.html")
    console.page.wait_for_selector('#projects-list[data-state="loaded"]')
    # Then both are listed, newest first, with their files, size and git link
    rows = console.page.locator("#projects-list tbody tr")
    assert [r.get_attribute("data-project-id") for r in rows.all()] == made[::-1]
    beta = rows.first.inner_text()
    assert "beta" in beta and "0 B" in beta and "not linked" in beta
    # And the picker offers them; a click on a name opens the project
    console.page.wait_for_selector('#project-pick[data-loaded="server"]')
    assert console.page.locator(f'#project-pick option[value="{made[0]}"]').count() == 1
    rows.nth(1).locator("a").click()
    console.page.locator("#project-title", has_text="alpha").wait_for()
    console.screenshot("projects-list")
    # And the Actions page's project picker lists them too
    console.goto("/actions.html?action=fix")
    console.page.check("input[name=source][value=project]")
    console.page.wait_for_selector('#project-pick[data-loaded="server"]')
    options = console.page.locator("#project-pick option").all_inner_texts()
    assert any(o.startswith("alpha (") for o in options)
    assert any(o.startswith("beta (") for o in options)
