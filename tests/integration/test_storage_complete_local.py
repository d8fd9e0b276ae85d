"""The complete route on local-disk uploads: the same call a client makes for S3 uploads
confirms a finished upload and says what a partial one still lacks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.utils.lambda_events import invoke, response_json


def call(
    function: str,
    method: str,
    path: str,
    key: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    response = invoke(function, method, path, key, body=body, raw=raw, headers=headers)
    return response["statusCode"], response_json(response)


def test_complete_confirms_a_local_upload_or_says_what_is_missing(
    api_key: str, set_env: Any, tmp_path: Path
) -> None:
    set_env(DATA_DIR=str(tmp_path / "data"), PROJECTS_BUCKET=None)
    status, project = call("projects_create", "POST", "/api/projects", api_key, body={"name": "p"})
    assert status == 201
    data = b"x" * 100
    status, upload = call(
        "projects_upload_start",
        "POST",
        f"/api/projects/{project['id']}/uploads",
        api_key,
        body={"filename": "a.txt", "size": len(data)},
    )
    assert status == 201 and upload["backend"] == "local" and upload["parts"] is None
    # Given half the bytes sent
    status, _ = call(
        "projects_upload_chunk",
        "PUT",
        upload["upload_url"],
        api_key,
        raw=data[:50],
        headers={"Content-Range": f"bytes 0-49/{len(data)}"},
    )
    assert status == 200
    # Then completing says where the upload stands
    status, refused = call("projects_upload_complete", "POST", upload["complete_url"], api_key)
    assert status == 409 and refused["error"]["code"] == "conflict"
    assert refused["error"]["offset"] == 50
    # When the rest arrives, completing confirms the stored file
    call(
        "projects_upload_chunk",
        "PUT",
        upload["upload_url"],
        api_key,
        raw=data[50:],
        headers={"Content-Range": f"bytes 50-99/{len(data)}"},
    )
    status, done = call("projects_upload_complete", "POST", upload["complete_url"], api_key)
    assert status == 200 and done["state"] == "complete"
    assert done["sha256"] == hashlib.sha256(data).hexdigest()
