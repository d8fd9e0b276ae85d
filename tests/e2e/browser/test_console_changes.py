"""A result applied back to its project from the Projects page, in a real browser: a
verified fix of an uploaded project's file saved as a new revision (the old one still
downloadable), an unverified one refused without "force" and saved with it, and the
Reviews panel: its empty list and a stored review, the webhook's secret and URLs,
and the review settings saved.

The projects' files are given in a body (``POST /api/projects/{id}/index`` with
``files``), so they have no git remote: a change becomes a new stored revision. What
the page shows is compared with the API's own answers over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.e2e.browser.conftest import ConsolePage
from tests.e2e.browser.test_console_actions import snap
from tests.e2e.browser.test_console_project_flow import call, fact, open_project, project_json
from tests.integration.test_actions import CALC, CALC_RIGHT, CALC_STILL_WRONG, CALC_TEST, fenced

SLOW_MS = 90_000  # the sandbox runs the project's test before and after each candidate
FILES = {"calc.py": CALC, "test_calc.py": CALC_TEST}


def uploaded_project(console: ConsolePage, key: str, name: str) -> dict[str, Any]:
    """A new project whose files came in a body (no git remote): its GET answer."""
    created = call(console, key, "POST", "/api/projects", json={"name": name})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    indexed = call(console, key, "POST", f"/api/projects/{pid}/index", json={"files": FILES})
    assert indexed.status_code == 200, indexed.text
    return project_json(console, key, pid)


def run_fix_on_calc(console: ConsolePage) -> Any:
    """Run fix on calc.py from the file action bar; the drawn verdict."""
    page = console.page
    page.locator('#tree li.file[data-path="calc.py"] button.file-name').click()
    page.locator("#file-actions").wait_for()
    page.select_option("#file-action", "fix")
    page.click("#file-run")
    verdict = page.locator("#file-result .verdict")
    verdict.wait_for(timeout=SLOW_MS)
    return verdict


def download(console: ConsolePage, key: str, pid: str, path: str, revision: str = "") -> str:
    params = {"path": path, **({"revision": revision} if revision else {})}
    got = call(console, key, "GET", f"/api/projects/{pid}/download", params=params)
    assert got.status_code == 200, got.text
    return got.text


def test_a_verified_fix_is_saved_as_a_new_revision_and_the_old_one_stays(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given an uploaded project whose add() subtracts, with its failing test, on its
    # page, and a model that fixes it
    project = uploaded_project(console, api_key, "calc-apply")
    pid, old_revision = project["id"], project["source"]["revision"]
    assert project.get("git") is None
    open_project(console, api_key, pid)
    ollama.script(fenced(CALC_RIGHT))
    # When fix runs on calc.py
    verdict = run_fix_on_calc(console)
    # Then the verified result offers to save it as a new revision: no branch, no pull
    # request (no git), no force (it is verified)
    assert verdict.get_attribute("data-verified") == "true"
    console.page.locator('#file-result .apply-part[data-state="ready"]').wait_for()
    part = console.page.locator("#file-result .apply-part")
    assert part.get_attribute("data-target") == "stored"
    run = part.locator("button.apply-run")
    assert run.inner_text() == "Save as new revision"
    assert part.locator(".apply-open").is_hidden() and part.locator(".apply-branch").is_hidden()
    assert part.locator(".apply-force").count() == 0
    # When it is saved with a message of ours
    part.locator(".apply-message").fill("Make add() add")
    with console.page.expect_response(
        lambda r: r.url.endswith(f"/api/projects/{pid}/changes") and r.request.method == "POST"
    ) as answered:
        run.click()
    assert answered.value.status == 202, answered.value.text()
    sent = answered.value.request.post_data_json
    fix_job = console.page.locator("#file-jobs .job").get_attribute("data-job-id")
    assert sent == {"job_id": fix_job, "message": "Make add() add"}
    change_job = answered.value.json()["job_id"]
    # Then the change job is followed to its end and the new revision is shown, as the
    # job's result says
    console.page.locator('#file-result .apply-part[data-state="applied"]').wait_for(timeout=SLOW_MS)
    job = call(console, api_key, "GET", f"/api/jobs/{change_job}").json()
    assert job["status"] == "succeeded", job
    out = job["result"]
    assert out["target"] == "stored" and out["verified"] is True and out["forced"] is False
    assert out["files"] == ["calc.py"] and out["message"] == "Make add() add"
    assert out["revision"] != old_revision
    panel = part.locator(f'.apply-jobs .job[data-job-id="{change_job}"]')
    assert panel.get_attribute("data-status") == "succeeded"
    shown = part.locator(".change-result dd[data-fact='revision'] code")
    assert shown.get_attribute("data-revision") == out["revision"]
    assert out["revision"][:12] in shown.inner_text()
    assert part.locator(".change-result dd[data-fact='files']").inner_text().strip() == "calc.py"
    assert "verified" in part.locator(".change-result").inner_text()
    assert "unverified" not in part.locator(".change-result").inner_text()
    # And the page read the project again: its source is at the new revision
    source = fact(console, "source-panel", "revision").locator(
        f'code[data-revision="{out["revision"]}"]'
    )
    source.wait_for()
    assert project_json(console, api_key, pid)["source"]["revision"] == out["revision"]
    # And the stored file is the fixed one, while the old revision still gives the old
    assert download(console, api_key, pid, "calc.py") == CALC_RIGHT
    assert download(console, api_key, pid, "calc.py", old_revision) == CALC
    # And the model was asked for the fix only: the message was ours
    assert len(ollama.requests_to("/api/chat")) == 1
    snap(console, "projects-change")


def test_an_unverified_fix_needs_force_and_says_so(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given an uploaded project on its page and a model that never gets add() right
    project = uploaded_project(console, api_key, "calc-force")
    pid, old_revision = project["id"], project["source"]["revision"]
    open_project(console, api_key, pid)
    for _ in range(10):
        ollama.script(fenced(CALC_STILL_WRONG))
    # When fix runs on calc.py
    verdict = run_fix_on_calc(console)
    # Then the unverified result offers "force", saying the commit will say so
    assert verdict.get_attribute("data-verified") == "false"
    console.page.locator('#file-result .apply-part[data-state="ready"]').wait_for()
    part = console.page.locator("#file-result .apply-part")
    force = part.locator(".apply-force")
    assert force.is_visible() and not force.is_checked()
    assert "unverified" in part.locator(".apply-force-note").inner_text()
    # When it is saved without force
    with console.page.expect_response(
        lambda r: r.url.endswith(f"/api/projects/{pid}/changes") and r.request.method == "POST"
    ) as answered:
        part.locator("button.apply-run").click()
    # Then the API's 409 and its message are shown, and nothing changed
    assert answered.value.status == 409
    error = answered.value.json()["error"]
    assert error["code"] == "conflict" and "not verified" in error["message"]
    assert "force" not in (answered.value.request.post_data_json or {})
    console.page.locator('#file-result .apply-part[data-state="refused"]').wait_for()
    shown = part.locator(".apply-error")
    assert shown.inner_text() == f"409 conflict: {error['message']}"
    assert error["message"] in console.page.locator("#message").inner_text()
    assert project_json(console, api_key, pid)["source"]["revision"] == old_revision
    # When force is ticked and it is saved again
    force.check()
    part.locator(".apply-message").fill("Try multiplying")
    with console.page.expect_request(
        lambda r: r.url.endswith(f"/api/projects/{pid}/changes") and r.method == "POST"
    ) as sent:
        part.locator("button.apply-run").click()
    assert sent.value.post_data_json["force"] is True
    # Then it is saved, marked unverified, and the stored file is the candidate
    console.page.locator('#file-result .apply-part[data-state="applied"]').wait_for(timeout=SLOW_MS)
    assert "unverified (forced)" in part.locator(".change-result").inner_text()
    assert shown.is_hidden()
    assert download(console, api_key, pid, "calc.py") == CALC_STILL_WRONG
    assert download(console, api_key, pid, "calc.py", old_revision) == CALC
    message = part.locator(".change-message pre").text_content() or ""
    assert message.startswith("Try multiplying") and "force: true" in message


def seed_review(key: str, pid: str) -> dict[str, Any]:
    """A review report as the webhook's review job keeps it (common.review)."""
    from common.auth import authenticate
    from common.reports import new_report_id, report_url, save_report
    from common.stores.postgres import get_postgres

    key_id = authenticate(key, store=get_postgres()).key_id
    assert key_id is not None
    report_id = new_report_id()
    body = {
        "report_id": report_id,
        "report_url": report_url(report_id),
        "kind": "review",
        "project_id": pid,
        "created_at": datetime.now(UTC).isoformat(),
        "pull_request": {
            "provider": "github",
            "number": 7,
            "title": "Sum the prices",
            "url": "https://github.example/acme/shop/pull/7",
            "head_sha": "a" * 40,
            "base_ref": "main",
            "head_ref": "feature",
        },
        "verdict": "fail",
        "fail_on": "high",
        "summary": "1 finding at high or above.",
        "comments_total": 3,
        "files": ["calc.py"],
        "checks": ["security", "analyze"],
        "counts": {"critical": 0, "high": 1, "medium": 2, "low": 0, "info": 0},
        "duration_ms": 12,
    }
    save_report("review", key_id=key_id, body=body, report_id=report_id)
    return body


def test_reviews_webhook_and_review_settings(
    console: ConsolePage, api_key: str, ollama: Any
) -> None:
    # Given a project without reviews, on its page
    project = uploaded_project(console, api_key, "reviewed")
    pid = project["id"]
    open_project(console, api_key, pid)
    page = console.page
    # Then its Reviews panel says there are none, as the API does
    page.locator('#reviews-list[data-state="loaded"]').wait_for()
    assert call(console, api_key, "GET", f"/api/projects/{pid}/reviews").json() == {"items": []}
    assert page.locator("#reviews-list").inner_text().strip() == "No reviews yet"
    # When a review is stored and the list refreshed
    review = seed_review(api_key, pid)
    page.click("#refresh-reviews")
    row = page.locator(f'#reviews-list tr.review[data-report-id="{review["report_id"]}"]')
    row.wait_for()
    # Then it shows the pull request (a link to it), the verdict, the counts and date
    link = row.locator("a.review-pr")
    assert link.get_attribute("href") == review["pull_request"]["url"]
    assert link.inner_text() == "#7 Sum the prices"
    assert row.locator(".badge.bad", has_text="fail").count() == 1
    counts = {
        c.get_attribute("data-severity"): c.get_attribute("data-count")
        for c in row.locator(".review-count").all()
    }
    assert counts == {"high": "1", "medium": "2"}
    assert str(datetime.now().year) in row.inner_text()

    # When the webhook is asked for
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/projects/{pid}/webhook") and r.request.method == "POST"
    ) as answered:
        page.click("#webhook")
    assert answered.value.status == 201, answered.value.text()
    made = answered.value.json()
    # Then its secret is shown once, with the note, and the three hosts' URLs
    secret = page.locator("#webhook-result .webhook-secret")
    secret.wait_for()
    assert secret.inner_text() == made["secret"] and len(made["secret"]) >= 16
    assert "shown only now" in page.locator("#webhook-result .webhook-note").inner_text()
    urls = {
        u.get_attribute("data-provider"): u.inner_text()
        for u in page.locator("#webhook-result .webhook-url").all()
    }
    assert urls == made["urls"] and set(urls) == {"github", "gitlab", "bitbucket"}
    assert all("/api/webhooks/" in url and pid in url for url in urls.values())
    # And asking again rotates it: the page shows the new one
    with page.expect_response(lambda r: r.url.endswith(f"/api/projects/{pid}/webhook")) as again:
        page.click("#webhook")
    rotated = again.value.json()["secret"]
    assert rotated != made["secret"]
    page.locator("#webhook-result .webhook-secret", has_text=rotated).wait_for()

    # When the settings are changed to security only, failing at medium, and saved
    page.uncheck("#review-check-analyze")
    page.select_option("#review-fail-on", "medium")
    with page.expect_response(
        lambda r: (
            r.url.endswith(f"/api/projects/{pid}/review/settings") and r.request.method == "PUT"
        )
    ) as saved:
        page.click("#review-settings-save")
    assert saved.value.status == 200, saved.value.text()
    assert saved.value.request.post_data_json == {"checks": ["security"], "fail_on": "medium"}
    answer = saved.value.json()
    # Then the page shows what the API saved
    assert answer == {"checks": ["security"], "fail_on": "medium"}
    state = page.locator("#review-settings-state")
    state.filter(has_text="Saved").wait_for()
    assert state.get_attribute("data-checks") == ",".join(answer["checks"])
    assert state.get_attribute("data-fail-on") == answer["fail_on"]
    assert "security" in state.inner_text() and "medium" in state.inner_text()
    assert page.is_checked("#review-check-security")
    assert not page.is_checked("#review-check-analyze")
    assert page.input_value("#review-fail-on") == "medium"
    # And unticking every check is refused before asking the server
    page.uncheck("#review-check-security")
    page.click("#review-settings-save")
    page.locator("#message", has_text="at least one check").wait_for()
    snap(console, "projects-reviews")
