"""The S3 backend against moto: presigned multipart parts, a resume, completion, delete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from common.errors import InvalidInput
from common.storage.s3 import MIN_PART_BYTES, S3Storage, part_size_for
from tests.utils.aws import mocked_aws

BUCKET = "projects-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mocked_aws(monkeypatch):
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put_part(url: str, data: bytes) -> None:
    # `requests` on purpose: moto intercepts it, as S3 would answer a browser's PUT.
    import requests

    response = requests.put(url, data=data, timeout=30)
    assert response.status_code == 200, response.text


def test_part_size_keeps_within_s3s_bounds() -> None:
    assert part_size_for(1) == 64 * 1024 * 1024
    assert part_size_for(10**12) * 10_000 >= 10**12
    assert part_size_for(1, wanted=1) == MIN_PART_BYTES


def test_a_presigned_multipart_upload_resumes_and_completes(s3: Any) -> None:
    # Given an upload of 2.5 parts opened with presigned part URLs
    data = os.urandom(MIN_PART_BYTES * 2 + MIN_PART_BYTES // 2)
    storage = S3Storage(BUCKET, client=s3)
    opened = storage.start("p1/uploads/u1", len(data), part_bytes=MIN_PART_BYTES)
    assert [p.part_number for p in opened.parts] == [1, 2, 3]
    assert opened.parts[-1].last == len(data) - 1
    # When two parts arrive and the client stops
    for part in opened.parts[:2]:
        put_part(part.url, data[part.first : part.last + 1])
    # Then S3 says which parts it holds, and completing now is refused
    assert [p["PartNumber"] for p in storage.received(opened.key, opened.upload_id)] == [1, 2]
    with pytest.raises(InvalidInput):
        storage.complete(opened.key, opened.upload_id, len(data))
    # When the missing part is sent, the upload completes into the whole object
    last = opened.parts[2]
    put_part(last.url, data[last.first : last.last + 1])
    assert storage.complete(opened.key, opened.upload_id, len(data))
    body = s3.get_object(Bucket=BUCKET, Key=opened.key)["Body"].read()
    assert body == data
    # And deleting the project's prefix removes it
    assert storage.delete_prefix("p1/") == 1
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_an_aborted_upload_leaves_no_parts(s3: Any) -> None:
    storage = S3Storage(BUCKET, client=s3)
    opened = storage.start("p2/uploads/u2", 10)
    put_part(opened.parts[0].url, b"0123456789")
    storage.abort(opened.key, opened.upload_id)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
