"""Code actions on the running local server: sync answers, jobs run by its worker, the zip."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import httpx

from tests.integration.test_actions import (
    CALC,
    CALC_RIGHT,
    CALC_TEST,
    LIB_RIGHT,
    LIB_TEST,
    PLAN,
    fenced,
)
from tests.utils.server import LocalServer


def call(server: LocalServer, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, server.url + path, headers={"X-API-Key": key}, timeout=60, **kwargs
    )


def wait_for(server: LocalServer, key: str, status_url: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = call(server, key, "GET", status_url).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job not finished in {timeout_s} s: {job}")


def test_fix_answers_at_once_with_the_verified_fix(
    server: LocalServer, api_key: str, ollama: Any
) -> None:
    ollama.script(fenced(CALC_RIGHT))
    response = call(
        server,
        api_key,
        "POST",
        "/api/fix",
        json={"files": {"calc.py": CALC, "test_calc.py": CALC_TEST}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True, response.text


def test_an_async_fix_is_a_job_the_servers_worker_finishes(
    server: LocalServer, api_key: str, ollama: Any
) -> None:
    ollama.script(fenced(CALC_RIGHT))
    response = call(
        server,
        api_key,
        "POST",
        "/api/fix",
        json={"files": {"calc.py": CALC, "test_calc.py": CALC_TEST}, "options": {"async": True}},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == accepted["status_url"]

    job = wait_for(server, api_key, accepted["status_url"])

    assert job["status"] == "succeeded", job
    assert job["kind"] == "fix" and job["result"]["verified"] is True
    assert job["result"]["files"] == {"calc.py": CALC_RIGHT}
    assert job["progress"]["percent"] == 100


def test_generate_is_a_job_whose_files_download_as_a_zip(
    server: LocalServer, api_key: str, ollama: Any
) -> None:
    plan = {**PLAN, "tasks": PLAN["tasks"]}
    ollama.script(json.dumps(plan))
    ollama.script(fenced(LIB_RIGHT))
    ollama.script(fenced(LIB_TEST))

    response = call(server, api_key, "POST", "/api/generate", json={"spec": "a greeter"})
    assert response.status_code == 202, response.text
    job = wait_for(server, api_key, response.json()["status_url"])

    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["verified"] is True and result["tests"]["passed"] == 1
    download = call(server, api_key, "GET", result["download_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.read("greeter/greeter.py").decode() == LIB_RIGHT
    # Another key sees neither the job nor its files.
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    other = create_key(store=get_postgres(), name="other").key
    assert call(server, other, "GET", result["download_url"]).status_code == 404
