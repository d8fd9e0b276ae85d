"""Project uploads on AWS: the routes with PROJECTS_BUCKET set, against a moto S3 server.

The parts go by real HTTP PUTs (httpx) to the presigned URLs the API hands out, as a
client would send them to S3; only S3 is a double (moto's server mode), the other
stores are the run's real ones. Covers an interrupted part and its resume, the
finishing job's SHA-256, an archive unpacked after completion, and the refusals.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.utils.lambda_events import FakeLambdaContext, http_event, invoke, response_json

BUCKET = "projects-s3-test"
PART = 5 * 1024 * 1024  # S3's smallest part: three parts stay cheap


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(set_env: Any, moto_url: str, tmp_path: Path) -> Iterator[Any]:
    """The bucket on the moto server, and the settings that send uploads there."""
    import boto3

    from common.storage.s3 import reset_s3_storage

    set_env(
        DATA_DIR=str(tmp_path / "data"),
        PROJECTS_BUCKET=BUCKET,
        UPLOAD_PART_BYTES=str(PART),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=moto_url,
        AWS_PROFILE=None,
    )
    reset_s3_storage()
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        reset_s3_storage()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=BUCKET, Key=item["Key"])
        for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=BUCKET)


def call(
    function: str, method: str, path: str, key: str, body: Any = None
) -> tuple[int, dict[str, Any], Any]:
    response = invoke(function, method, path, key, body=body)
    return response["statusCode"], response.get("headers") or {}, response_json(response)


@pytest.fixture
def project(api_key: str, s3: Any) -> str:
    status, _, body = call("projects_create", "POST", "/api/projects", api_key, {"name": "p"})
    assert status == 201, body
    return str(body["id"])


def start(key: str, pid: str, **body: Any) -> tuple[int, Any]:
    status, _, answer = call(
        "projects_upload_start", "POST", f"/api/projects/{pid}/uploads", key, body
    )
    return status, answer


def status_of(key: str, url: str) -> Any:
    status, _, answer = call("projects_upload_status", "GET", url, key)
    assert status == 200, answer
    return answer


def complete(key: str, upload: Any) -> tuple[int, Any]:
    status, _, answer = call("projects_upload_complete", "POST", upload["complete_url"], key)
    return status, answer


def put_part(part: Any, data: bytes) -> None:
    # Straight to S3, no API key: the presigned URL is the authorisation.
    response = httpx.put(part["url"], content=data[part["first"] : part["last"] + 1], timeout=30)
    assert response.status_code == 200, response.text


def hang_up_mid_part(part: Any, data: bytes) -> None:
    """Announce a whole part, send half of it, and close: a connection that dropped."""
    url = urlsplit(part["url"])
    body = data[part["first"] : part["last"] + 1]
    head = (
        f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])


def run_finish_job(upload: Any) -> Any:
    """What the jobs worker does with the job that complete queued."""
    from common.jobs.kinds import load_runner

    runner = load_runner("storage_finish")
    return runner({"project_id": upload["project_id"], "upload_id": upload["upload_id"]}, None)  # type: ignore[arg-type]


def keys_in_bucket(client: Any) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_an_interrupted_part_resumes_and_the_file_is_verified(
    api_key: str, project: str, s3: Any
) -> None:
    # Given a 2.5-part file and an upload opened for it
    data = os.urandom(2 * PART + PART // 2)
    digest = hashlib.sha256(data).hexdigest()
    status, upload = start(api_key, project, filename="src/blob.bin", size=len(data), sha256=digest)
    assert status == 201, upload
    assert upload["backend"] == "s3" and upload["part_bytes"] == PART
    assert [p["part_number"] for p in upload["parts"]] == [1, 2, 3]
    assert upload["parts"][-1]["last"] == len(data) - 1
    # When part 1 arrives whole and part 2's connection drops half way
    put_part(upload["parts"][0], data)
    hang_up_mid_part(upload["parts"][1], data)
    # Then the status says which parts S3 holds and presigns the rest again
    shown = status_of(api_key, upload["upload_url"])
    assert shown["state"] == "receiving" and shown["received_parts"] == [1]
    assert shown["offset"] == PART
    assert [p["part_number"] for p in shown["parts"]] == [2, 3]
    # And completing now is refused with what is missing
    status, refused = complete(api_key, upload)
    assert status == 409 and refused["error"]["code"] == "conflict", refused
    assert refused["error"]["missing_parts"] == [2, 3] and refused["error"]["offset"] == PART
    # When the client sends the missing parts to the fresh URLs and completes
    for part in shown["parts"]:
        put_part(part, data)
    status, assembled = complete(api_key, upload)
    # Then S3 assembles them and a job is queued to verify the whole file
    assert status == 202 and assembled["state"] == "verifying" and assembled["job_id"], assembled
    assert complete(api_key, upload)[1]["job_id"] == assembled["job_id"]  # asking again: same
    from common.jobs.store import get_job_store

    job = get_job_store().find_job(assembled["job_id"], key_id=_key_id(api_key))
    assert job is not None and job["kind"] == "storage_finish"
    # When the job runs, it reads the object once for its SHA-256 and stores the file
    finished = run_finish_job(upload)
    assert finished["state"] == "complete" and finished["sha256"] == digest
    assert run_finish_job(upload)["version"] == finished["version"]  # a retry does nothing
    shown = status_of(api_key, upload["upload_url"])
    assert shown["state"] == "complete" and shown["sha256"] == digest and shown["files"] == 1
    assert keys_in_bucket(s3) == [f"{project}/files/src/blob.bin"]
    status, _, detail = call("projects_get", "GET", f"/api/projects/{project}", api_key)
    assert status == 200 and detail["files"] == [
        {
            "path": "src/blob.bin",
            "size": len(data),
            "sha256": digest,
            "version": 1,
            "kind": "oversized",
            "reason": "12.5 MB is over the 2 MB read as code",
        }
    ]
    # And the download is a redirect to S3, which serves the bytes and a Range
    status, headers, _ = _download(api_key, project, "src/blob.bin")
    assert status == 307
    location = headers["location"]
    whole = httpx.get(location, timeout=30)
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == digest
    tail = httpx.get(location, headers={"Range": "bytes=-100"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-100:]
    # And deleting the project removes its objects
    status, _, _ = call("projects_delete", "DELETE", f"/api/projects/{project}", api_key)
    assert status == 204
    assert keys_in_bucket(s3) == []


def test_an_archive_is_unpacked_into_the_bucket_after_completion(
    api_key: str, project: str, s3: Any
) -> None:
    # Given a zip of two files sent as its single part
    members = {"app/main.py": b"print('hi')\n", "app/data.bin": os.urandom(3000)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    data = buffer.getvalue()
    status, upload = start(api_key, project, filename="code.zip", size=len(data))
    assert status == 201 and len(upload["parts"]) == 1, upload
    put_part(upload["parts"][0], data)
    # When it is completed and the job runs
    status, assembled = complete(api_key, upload)
    assert status == 202, assembled
    finished = run_finish_job(upload)
    # Then each member is an object under files/, with its own size and hash
    assert finished["state"] == "complete" and finished["files"] == 2
    assert finished["sha256"] == hashlib.sha256(data).hexdigest()
    assert keys_in_bucket(s3) == [f"{project}/files/app/data.bin", f"{project}/files/app/main.py"]
    stored = s3.get_object(Bucket=BUCKET, Key=f"{project}/files/app/data.bin")["Body"].read()
    assert stored == members["app/data.bin"]
    status, _, detail = call("projects_get", "GET", f"/api/projects/{project}", api_key)
    assert {f["path"]: f["sha256"] for f in detail["files"]} == {
        name: hashlib.sha256(content).hexdigest() for name, content in members.items()
    }
    # And the text file reached the code actions' view of the project
    from uuid import UUID

    from common.projects import load_project_files

    texts = load_project_files(project_id=UUID(project), owner_key_id=_key_id(api_key))
    assert texts == {"app/main.py": "print('hi')\n"}


def test_a_wrong_sha256_fails_the_upload_and_keeps_nothing(
    api_key: str, project: str, s3: Any
) -> None:
    from common.errors import AppError

    data = os.urandom(1000)
    status, upload = start(api_key, project, filename="x.bin", size=len(data), sha256="0" * 64)
    put_part(upload["parts"][0], data)
    assert complete(api_key, upload)[0] == 202
    with pytest.raises(AppError) as refused:
        run_finish_job(upload)
    assert refused.value.code == "checksum_mismatch"
    shown = status_of(api_key, upload["upload_url"])
    assert shown["state"] == "failed" and shown["error_code"] == "checksum_mismatch"
    assert keys_in_bucket(s3) == []
    status, again = complete(api_key, upload)
    assert status == 409 and again["error"]["code"] == "conflict"


def test_bytes_sent_to_the_api_and_an_upload_without_size_are_refused(
    api_key: str, project: str, s3: Any
) -> None:
    status, refused = start(api_key, project, filename="x.bin")
    assert status == 422 and refused["error"]["code"] == "invalid_input", refused
    status, upload = start(api_key, project, filename="x.bin", size=10)
    module = __import__("functions.projects_upload_chunk.handler", fromlist=["handler"])
    event = http_event(
        "PUT",
        upload["upload_url"],
        raw_body=b"0123456789",
        headers={"X-API-Key": api_key, "Content-Range": "bytes 0-9/10"},
    )
    response = module.handler(event, FakeLambdaContext())
    body = response_json(response)
    assert response["statusCode"] == 409 and "presigned" in body["error"]["message"], body


def _download(key: str, pid: str, path: str) -> tuple[int, dict[str, Any], Any]:
    module = __import__("functions.projects_download.handler", fromlist=["handler"])
    event = http_event(
        "GET", f"/api/projects/{pid}/download", headers={"X-API-Key": key}, query=f"path={path}"
    )
    response = module.handler(event, FakeLambdaContext())
    return response["statusCode"], response.get("headers") or {}, response


def _key_id(key: str) -> Any:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return authenticate(key, store=get_postgres()).key_id


def test_an_action_on_a_project_in_s3_runs_on_a_local_copy_of_the_whole_tree(
    api_key: str, project: str, s3: Any
) -> None:
    from uuid import UUID

    from common.actions.inputs import CodeInput, load_workspace
    from common.storage.tree import LOCAL_TREE_COPIES, store_texts

    key_id, pid = _key_id(api_key), UUID(project)
    files = {
        "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": (
            "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
        ),
    }
    # Given a project whose files are only in the bucket
    store_texts(project_id=pid, owner_key_id=key_id, files=files, queue_index=False)
    assert keys_in_bucket(s3) == sorted(f"{project}/files/{p}" for p in files)
    # When an action loads it by project_id
    request = CodeInput(project_id=pid, path="calc.py")
    workspace = load_workspace(request, owner_key_id=key_id)
    # Then its repository is a folder on this machine holding every stored file
    assert workspace.repository is not None
    tree = workspace.repository.tree
    on_disk = {str(p.relative_to(tree)): p.read_text() for p in tree.rglob("*") if p.is_file()}
    assert on_disk == files
    assert workspace.files == {
        "calc.py": files["calc.py"],
        "tests/test_calc.py": files["tests/test_calc.py"],
    }
    # And the same version is not fetched again; a new one is a new copy, and old
    # copies beyond the bound go
    assert load_workspace(request, owner_key_id=key_id).repository.tree == tree  # type: ignore[union-attr]
    trees = [tree]
    for n in range(LOCAL_TREE_COPIES + 1):
        changed = {**files, "calc.py": f"def add(a, b):\n    return a + b + {n}\n"}
        store_texts(project_id=pid, owner_key_id=key_id, files=changed, queue_index=False)
        ws = load_workspace(request, owner_key_id=key_id)
        assert ws.repository is not None and ws.repository.tree not in trees
        assert (ws.repository.tree / "calc.py").read_text() == changed["calc.py"]
        trees.append(ws.repository.tree)
    kept = sorted(p for p in trees[-1].parent.iterdir())
    assert kept == sorted(trees[-LOCAL_TREE_COPIES:])
