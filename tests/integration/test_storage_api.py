"""Project storage through the Lambda door, in-process, on real stores: uploads in
chunks, unpacking (and refusing) archives, metadata, Range downloads, quota, delete."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

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
    query: str = "",
) -> tuple[int, dict[str, Any], Any]:
    response = invoke(function, method, path, key, body=body, raw=raw, headers=headers, query=query)
    return response["statusCode"], response.get("headers") or {}, response


def as_json(response: Any) -> Any:
    return response_json(response)


def as_bytes(response: Any) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


@pytest.fixture
def data_dir(set_env: Any, tmp_path: Path) -> Path:
    set_env(DATA_DIR=str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def project(api_key: str, data_dir: Path) -> str:
    status, _, response = call(
        "projects_create", "POST", "/api/projects", api_key, body={"name": "p"}
    )
    assert status == 201
    return str(as_json(response)["id"])


def start(key: str, project: str, **body: Any) -> tuple[int, Any]:
    status, _, response = call(
        "projects_upload_start", "POST", f"/api/projects/{project}/uploads", key, body=body
    )
    return status, as_json(response)


def put(key: str, url: str, data: bytes, first: int, total: int | str) -> tuple[int, Any]:
    last = first + len(data) - 1
    status, _, response = call(
        "projects_upload_chunk",
        "PUT",
        url,
        key,
        raw=data,
        headers={
            "Content-Range": f"bytes {first}-{last}/{total}",
            "Content-Type": "application/octet-stream",
        },
    )
    return status, as_json(response)


def upload(key: str, project: str, filename: str, data: bytes, chunk: int = 1000) -> Any:
    status, started = start(key, project, filename=filename, size=len(data))
    assert status == 201, started
    answer = started
    for first in range(0, len(data), chunk):
        status, answer = put(
            key, started["upload_url"], data[first : first + chunk], first, len(data)
        )
        assert status in (200, 422), answer
        if status == 422:
            return status, answer, started
    return 200, answer, started


def detail(key: str, project: str) -> tuple[int, Any]:
    status, _, response = call("projects_get", "GET", f"/api/projects/{project}", key)
    return status, as_json(response)


def test_a_file_sent_in_chunks_is_stored_with_its_hash_and_served_by_range(
    api_key: str, project: str, data_dir: Path
) -> None:
    # Given a file of 2500 bytes and its declared sha256
    data = b"".join(f"line {i}\n".encode() for i in range(300))[:2500]
    digest = hashlib.sha256(data).hexdigest()
    status, started = start(api_key, project, filename="src/notes.txt", size=2500, sha256=digest)
    assert status == 201, started
    assert started["offset"] == 0 and started["state"] == "receiving"
    url = started["upload_url"]
    # When the first chunk arrives, the status says where to go on
    status, answer = put(api_key, url, data[:1000], 0, 2500)
    assert status == 200 and answer["offset"] == 1000, answer
    status, _, response = call("projects_upload_status", "GET", url, api_key)
    assert status == 200 and as_json(response)["offset"] == 1000
    # And a chunk at the wrong offset is refused with the right one
    status, answer = put(api_key, url, data[2000:], 2000, 2500)
    assert status == 409 and answer["error"]["code"] == "conflict"
    assert answer["error"]["offset"] == 1000
    # When the rest arrives
    status, answer = put(api_key, url, data[1000:], 1000, 2500)
    # Then the upload is complete, its hash checked
    assert status == 200, answer
    assert answer["state"] == "complete" and answer["sha256"] == digest
    assert answer["files"] == 1 and answer["version"] == 1
    # And the project lists it, in its tree
    status, shown = detail(api_key, project)
    assert status == 200, shown
    assert shown["files"] == [
        {
            "path": "src/notes.txt",
            "size": 2500,
            "sha256": digest,
            "version": 1,
            "kind": "text",
            "reason": None,
        }
    ]
    # And where the files came from, with the index job the change queued
    assert shown["source"]["kind"] == "upload" and shown["source"]["revision"] == digest
    assert shown["source"]["ref"] == "src/notes.txt" and shown["source"]["changed_at"]
    assert shown["index"]["state"] == "queued" and shown["index"]["pending_revision"] == digest
    assert shown["size_bytes"] == 2500 and shown["version"] == 1
    src = shown["tree"]["children"][0]
    assert (src["name"], src["type"], src["size"]) == ("src", "dir", 2500)
    assert src["children"][0]["path"] == "src/notes.txt"
    assert (data_dir / "storage" / project / "files" / "src/notes.txt").read_bytes() == data
    # And the code actions see it as a project file

    from common.stores.mongo import get_mongo

    doc = get_mongo()["project_files"].find_one({"project_id": project, "path": "src/notes.txt"})
    assert doc is not None and doc["content"] == data.decode()
    # And a range of it downloads as 206
    query = "path=src/notes.txt"
    dl = f"/api/projects/{project}/download"
    status, headers, response = call(
        "projects_download", "GET", dl, api_key, headers={"Range": "bytes=10-19"}, query=query
    )
    assert status == 206, response
    assert as_bytes(response) == data[10:20]
    assert headers["content-range"] == "bytes 10-19/2500"
    status, headers, response = call("projects_download", "GET", dl, api_key, query=query)
    assert status == 200 and as_bytes(response) == data
    status, headers, response = call(
        "projects_download", "GET", dl, api_key, headers={"Range": "bytes=5000-"}, query=query
    )
    assert status == 416 and headers["content-range"] == "bytes */2500"
    assert as_json(response)["error"]["code"] == "range_not_satisfiable"


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_is_unpacked_into_the_tree(api_key: str, project: str) -> None:
    archive = zipped(
        {"app/main.py": b"print('hi')\n", "app/lib/util.py": b"X = 1\n", "logo.bin": b"\x00\x01"}
    )
    status, answer, _ = upload(api_key, project, "code.zip", archive)
    assert status == 200 and answer["state"] == "complete" and answer["files"] == 3, answer
    status, shown = detail(api_key, project)
    assert [f["path"] for f in shown["files"]] == ["app/lib/util.py", "app/main.py", "logo.bin"]
    assert shown["files"][1]["sha256"] == hashlib.sha256(b"print('hi')\n").hexdigest()
    from common.stores.mongo import get_mongo

    kept = {d["path"] for d in get_mongo()["project_files"].find({"project_id": project})}
    assert kept == {"app/main.py", "app/lib/util.py"}  # binary files are not code


@pytest.mark.parametrize(
    "entries",
    [
        {"ok.py": b"x = 1\n", "../escape.py": b"boom"},
        {"ok.py": b"x = 1\n", "zeros.bin": bytes(4 << 20)},
    ],
    ids=["zip-slip", "bomb"],
)
def test_an_unsafe_archive_is_422_and_leaves_nothing(
    api_key: str, project: str, data_dir: Path, entries: dict[str, bytes], set_env: Any
) -> None:
    set_env(DATA_DIR=str(data_dir), UNPACK_MAX_RATIO="50")
    status, answer, started = upload(api_key, project, "bad.zip", zipped(entries), chunk=1 << 20)
    assert status == 422, answer
    assert answer["error"]["code"] == "unsafe_archive" and answer["error"]["message"]
    root = data_dir / "storage" / project
    assert not (root / "files").exists()
    assert [p.name for p in root.iterdir()] == ["uploads"]
    assert list((root / "uploads").iterdir()) == []
    assert not (data_dir.parent / "escape.py").exists()
    status, shown = detail(api_key, project)
    assert shown["files"] == [] and shown["version"] == 0
    status, _, response = call("projects_upload_status", "GET", started["upload_url"], api_key)
    assert as_json(response)["state"] == "failed"


def test_a_wrong_sha256_is_422_and_nothing_is_kept(api_key: str, project: str) -> None:
    status, started = start(api_key, project, filename="a.txt", size=3, sha256="0" * 64)
    status, answer = put(api_key, started["upload_url"], b"abc", 0, 3)
    assert status == 422 and answer["error"]["code"] == "checksum_mismatch"
    assert detail(api_key, project)[1]["files"] == []


def test_the_quota_refuses_an_upload_that_would_pass_it(
    api_key: str, project: str, set_env: Any, data_dir: Path
) -> None:
    set_env(DATA_DIR=str(data_dir), STORAGE_QUOTA_BYTES="100")
    status, answer = start(api_key, project, filename="big.bin", size=101)
    assert status == 413 and answer["error"]["code"] == "quota_exceeded"
    assert answer["error"]["quota_bytes"] == 100
    # A size not declared up front is caught by the chunk that would pass it
    status, started = start(api_key, project, filename="big.bin")
    assert status == 201
    status, answer = put(api_key, started["upload_url"], bytes(101), 0, "*")
    assert status == 413 and answer["error"]["code"] == "quota_exceeded"


def test_another_key_sees_404_and_a_path_that_escapes_is_refused(
    api_key: str, project: str
) -> None:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    other = create_key(store=get_postgres(), name="other").key
    assert detail(other, project)[0] == 404
    assert start(other, project, filename="a.txt")[0] == 404
    status, answer = start(api_key, project, filename="../../etc/x")
    assert status == 422 and answer["error"]["code"] == "unsafe_archive"


def test_delete_removes_files_metadata_vectors_and_the_project(
    api_key: str, project: str, data_dir: Path, set_env: Any
) -> None:
    set_env(DATA_DIR=str(data_dir), EMBEDDING_PROVIDER="embedded")
    from common.memory import embedders

    embedders.reset()
    assert upload(api_key, project, "m.py", b"def f():\n    return 1\n")[0] == 200
    status, _, response = call(
        "projects_index",
        "POST",
        f"/api/projects/{project}/index",
        api_key,
        body={"files": {"m.py": "def f():\n    return 1\n"}},
    )
    assert status == 200, as_json(response)
    from common.memory.index import _qdrant, collection_for
    from common.stores.mongo import get_mongo

    assert _qdrant().collection_exists(collection_for(project))
    status, _, response = call("projects_delete", "DELETE", f"/api/projects/{project}", api_key)
    assert status == 204, response
    assert detail(api_key, project)[0] == 404
    assert not (data_dir / "storage" / project).exists()
    assert not _qdrant().collection_exists(collection_for(project))
    db = get_mongo()
    for name in ("storage_files", "upload_sessions", "project_files", "project_meta"):
        assert db[name].count_documents({"project_id": project}) == 0, name
    status, _, response = call("projects_delete", "DELETE", f"/api/projects/{project}", api_key)
    assert status == 404
    embedders.reset()


def test_offset_chunks_work_when_the_size_was_given(api_key: str, project: str) -> None:
    status, started = start(api_key, project, filename="o.txt", size=6)
    url = started["upload_url"]
    for first, piece in ((0, b"abc"), (3, b"def")):
        status, _, response = call(
            "projects_upload_chunk", "PUT", url, api_key, raw=piece, query=f"offset={first}"
        )
        assert status == 200, as_json(response)
    assert as_json(response)["state"] == "complete"
    status, unsized = start(api_key, project, filename="u.txt")
    status, _, response = call(
        "projects_upload_chunk", "PUT", unsized["upload_url"], api_key, raw=b"x", query="offset=0"
    )
    assert status == 400 and as_json(response)["error"]["code"] == "bad_request"
