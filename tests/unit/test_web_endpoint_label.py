"""The per-endpoint metrics count the web console's files under one "console" label:
its bundles (a mount, no route) and pages would otherwise be "unmatched" and one row each."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from common.web import create_app
from common.web.middleware import endpoint_label

router = APIRouter()


@router.get("/api/jobs/{job_id}")
def read_job(job_id: str) -> dict[str, str]:
    return {"id": job_id}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "common.web.middleware.record_request",
        lambda endpoint, status, *_: seen.append((endpoint, status)),
    )
    return seen


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    # Given an app laid out as local/app.py serves the console: pages as routes,
    # bundles as a StaticFiles mount
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "jobs.js").write_text("console.log('jobs')\n")
    page = tmp_path / "jobs.html"
    page.write_text("<!doctype html><title>Jobs</title>\n")
    app = create_app([router])
    app.mount("/assets", StaticFiles(directory=tmp_path / "assets"), name="console-assets")
    for path in ("/", "/index.html", "/jobs.html"):
        app.add_api_route(
            path, lambda: FileResponse(page), methods=["GET"], include_in_schema=False
        )
    return TestClient(app)


def test_console_files_are_one_label_and_api_routes_keep_their_template(
    client: TestClient, recorded: list[tuple[str, int]]
) -> None:
    # When pages, bundles (one missing), an API route and an unknown path are requested
    for path in ("/", "/index.html", "/jobs.html", "/assets/jobs.js", "/assets/gone.js"):
        client.get(path)
    client.get("/api/jobs/42")
    client.get("/api/nothing-here")
    # Then the console's requests share one label; the API keeps its route template
    assert recorded == [
        ("console", 200),
        ("console", 200),
        ("console", 200),
        ("console", 200),
        ("console", 404),
        ("/api/jobs/{job_id}", 200),
        ("unmatched", 404),
    ]


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/", "console"),
        ("/monitor.html", "console"),
        ("/assets/chunk-3f2a.js", "console"),
        ("/api/assets/x", "unmatched"),
        ("/api/jobs.html/x", "unmatched"),
        ("/docs", "unmatched"),
    ],
)
def test_a_request_no_route_answered_is_labelled_by_its_path(path: str, label: str) -> None:
    assert endpoint_label({"type": "http", "path": path}) == label
