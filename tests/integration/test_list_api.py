"""GET /api/jobs and GET /api/projects through the Lambda door, in-process, on real
stores: the key's own rows only, newest first, paged by cursor, filters, and 422s."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.integration.test_storage_api import upload
from tests.utils.lambda_events import FakeLambdaContext, http_event, invoke, response_json


def call(function: str, path: str, key: str | None, query: str = "") -> tuple[int, Any]:
    response = invoke(function, "GET", path, key, query=query)
    return response["statusCode"], response_json(response)


def list_jobs(key: str | None, query: str = "") -> tuple[int, Any]:
    return call("jobs_list", "/api/jobs", key, query)


def list_projects(key: str | None, query: str = "") -> tuple[int, Any]:
    return call("projects_list", "/api/projects", key, query)


def key_id_of(key: str) -> UUID:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return authenticate(key, store=get_postgres()).key_id


def other_key() -> str:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    return create_key(store=get_postgres(), name="someone else").key


def add_job(
    key: str,
    *,
    kind: str = "noop",
    status: str = "queued",
    age_s: float = 0,
    result: Any = None,
    at: str | None = None,
) -> str:
    """A job row of ``key``, ``age_s`` seconds old (or created exactly ``at``)."""
    from psycopg.types.json import Jsonb

    from common.stores.postgres import get_postgres

    created = "%(at)s::timestamptz" if at else "now() - make_interval(secs => %(age)s)"
    with get_postgres().connection() as conn:
        row = conn.execute(
            "INSERT INTO jobs (kind, status, key_id, result, created_at, finished_at)"
            f" VALUES (%(kind)s, %(status)s, %(key)s, %(result)s, {created},"
            " CASE WHEN %(status)s IN ('succeeded', 'failed', 'cancelled') THEN now() END)"
            " RETURNING id",
            {
                "kind": kind,
                "status": status,
                "key": key_id_of(key),
                "result": None if result is None else Jsonb(result),
                "age": age_s,
                "at": at,
            },
        ).fetchone()
    assert row is not None
    return str(row["id"])


def all_pages(fetch: Any, key: str, query: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        status, body = fetch(key, query + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "the cursor never ends"


def assert_invalid(status: int, body: Any, path: str) -> None:
    assert status == 422, body
    assert body["error"]["code"] == "invalid_input" and body["error"]["message"]
    assert [f["path"] for f in body["error"]["fields"]] == [path]


# -- GET /api/jobs ------------------------------------------------------------------


def test_jobs_are_the_keys_own_newest_first_in_pages_without_results(api_key: str) -> None:
    # Given five jobs of this key (one with a big result) and one of another key
    ids = [add_job(api_key, age_s=50 - 10 * i) for i in range(4)]
    ids.append(add_job(api_key, status="succeeded", result={"files": {"a.py": "x" * 5000}}))
    add_job(other_key())
    # When they are listed two at a time
    pages = all_pages(list_jobs, api_key, "limit=2")
    # Then three pages hold exactly this key's jobs, newest first
    assert pages == [ids[::-1][0:2], ids[::-1][2:4], ids[::-1][4:]]
    # And each item is the job as GET /api/jobs/{id} shows it, minus its result
    status, body = list_jobs(api_key, "limit=1")
    assert status == 200
    item = body["items"][0]
    assert item["id"] == ids[-1] and item["status"] == "succeeded" and "result" not in item
    status, full = call("jobs_get", f"/api/jobs/{ids[-1]}", api_key)
    assert status == 200 and full["result"]["files"]
    assert {k: v for k, v in full.items() if k != "result"} == item


def test_jobs_created_at_the_same_instant_are_neither_lost_nor_repeated(api_key: str) -> None:
    # Given four jobs created in the same microsecond (one transaction's now())
    at = "2026-01-02T03:04:05.123456+00:00"
    ids = {add_job(api_key, at=at) for _ in range(4)}
    # When they are paged one at a time
    pages = all_pages(list_jobs, api_key, "limit=1")
    # Then each comes exactly once (the id breaks the tie)
    seen = [i for page in pages for i in page]
    assert sorted(seen) == sorted(ids) and len(seen) == 4


def test_jobs_filter_by_status_repeated_or_comma_listed_and_by_kind(api_key: str) -> None:
    # Given jobs in every status and of two kinds
    made = {
        status: add_job(api_key, status=status, age_s=n)
        for n, status in enumerate(["queued", "running", "succeeded", "failed", "cancelled"])
    }
    scan = add_job(api_key, kind="security_scan", status="failed", age_s=10)

    def ids(query: str) -> set[str]:
        status, body = list_jobs(api_key, query)
        assert status == 200, body
        return {item["id"] for item in body["items"]}

    # When and Then: repeated, comma-listed, mixed, and with a kind
    assert ids("status=failed&status=cancelled") == {made["failed"], made["cancelled"], scan}
    assert ids("status=queued,running") == {made["queued"], made["running"]}
    assert ids("status=queued,%20succeeded&status=queued") == {made["queued"], made["succeeded"]}
    assert ids("status=failed&kind=security_scan") == {scan}
    assert ids("kind=noop") == set(made.values())
    assert ids("") == {*made.values(), scan}


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("status=done", "query.status"),
        ("status=queued,bogus", "query.status"),
        ("kind=mine-bitcoin", "query.kind"),
        ("limit=0", "query.limit"),
        ("limit=101", "query.limit"),
        ("limit=ten", "query.limit"),
        ("cursor=not-a-cursor", "query.cursor"),
        ("cursor=bm90fGE", "query.cursor"),  # base64 of "not|a"
    ],
)
def test_bad_job_list_parameters_are_422_naming_the_parameter(
    api_key: str, query: str, path: str
) -> None:
    status, body = list_jobs(api_key, query)
    assert_invalid(status, body, path)


def test_listing_jobs_needs_a_key(stores: None) -> None:
    status, body = list_jobs(None)
    assert status == 401 and body["error"]["code"] == "unauthorized"


# -- GET /api/projects -----------------------------------------------------------------


def create_project(key: str, name: str) -> str:
    module = __import__("functions.projects_create.handler", fromlist=["handler"])
    event = http_event("POST", "/api/projects", body={"name": name}, headers={"X-API-Key": key})
    response = module.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 201
    return str(response_json(response)["id"])


@pytest.fixture
def data_dir(set_env: Any, tmp_path: Path) -> Path:
    set_env(DATA_DIR=str(tmp_path / "data"))
    return tmp_path / "data"


def test_projects_are_the_keys_own_newest_first_with_size_files_and_git(
    api_key: str, data_dir: Path
) -> None:
    from common.git.store import GitSyncStore
    from common.stores.postgres import get_postgres

    # Given three projects of this key: one with two uploaded files, one linked to git
    # and synced once; and a project of another key
    first = create_project(api_key, "first")
    stored = create_project(api_key, "stored")
    linked = create_project(api_key, "linked")
    create_project(other_key(), "theirs")
    assert upload(api_key, stored, "a.py", b"print('a')\n" * 30)[0] == 200
    assert upload(api_key, stored, "b.txt", b"hello\n")[0] == 200
    git = GitSyncStore(get_postgres())
    git.set_link(
        project_id=UUID(linked),
        owner_key_id=key_id_of(api_key),
        remote=f"https://example.test/acme/{uuid.uuid4().hex[:6]}.git",
        branch="main",
        schedule="1h",
        interval_s=3600,
    )
    run = git.insert_run(project_id=UUID(linked), trigger="manual")
    git.update_run(run["id"], status="succeeded", message="pulled")
    # When they are listed two at a time
    pages = all_pages(list_projects, api_key, "limit=2")
    # Then this key's three come newest first
    assert pages == [[linked, stored], [first]]
    status, body = list_projects(api_key)
    assert status == 200 and body["next_cursor"] is None
    by_id = {item["id"]: item for item in body["items"]}
    # And each says its size, file count, dates and git link at a glance
    assert by_id[stored]["files"] == 2 and by_id[stored]["size_bytes"] == 11 * 30 + 6
    assert by_id[stored]["git"] is None
    assert by_id[stored]["updated_at"] > by_id[stored]["created_at"]  # the uploads touched it
    assert by_id[first]["files"] == 0 and by_id[first]["size_bytes"] == 0
    link = by_id[linked]["git"]
    assert link["branch"] == "main" and link["schedule"] == "1h"
    assert link["remote_url"].startswith("https://example.test/acme/")
    assert link["last_sync_status"] == "succeeded" and link["last_sync_at"]
    assert by_id[linked]["name"] == "linked"


@pytest.mark.parametrize(
    ("query", "path"),
    [("limit=0", "query.limit"), ("limit=500", "query.limit"), ("cursor=!!!", "query.cursor")],
)
def test_bad_project_list_parameters_are_422(api_key: str, query: str, path: str) -> None:
    status, body = list_projects(api_key, query)
    assert_invalid(status, body, path)


def test_listing_projects_needs_a_key_and_a_new_key_has_none(api_key: str) -> None:
    status, body = list_projects(None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = list_projects(other_key())
    assert status == 200 and body == {"items": [], "next_cursor": None}
