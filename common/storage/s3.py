"""S3 for project uploads on AWS: multipart uploads whose parts go by presigned URLs.

On Lambda a request body stops at 6 MB and a function at 29 s, so the bytes of a big
upload must not pass through a function: the client PUTs each part straight to S3 at
a presigned URL, and a function only opens and completes the multipart upload. The
part ETags are read back from S3 (``list_parts``) rather than trusted from the client.

boto3 is imported on first use: cold starts count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from common.errors import InvalidInput, StoreUnavailable

# S3's own bounds: parts of 5 MiB at least (but the last), at most 10,000 of them.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000


@dataclass(frozen=True)
class PresignedPart:
    part_number: int
    url: str
    first: int  # byte offsets of the part in the file, inclusive
    last: int


@dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str
    part_bytes: int
    parts: list[PresignedPart]


def part_size_for(size: int, wanted: int = 64 * 1024 * 1024) -> int:
    """The part size for ``size`` bytes: ``wanted``, grown so that at most MAX_PARTS fit."""
    return max(MIN_PART_BYTES, wanted, math.ceil(size / MAX_PARTS))


class S3Storage:
    """Multipart uploads into ``bucket``.

    Parameters
    ----------
    bucket:
        The projects bucket (``STORAGE_BUCKET``; ``ProjectsBucket`` in template.yaml).
    client:
        A boto3 S3 client; by default one is made on first use.
    expires_s:
        How long a presigned part URL stays valid.
    """

    def __init__(self, bucket: str, *, client: Any = None, expires_s: int = 3600) -> None:
        self.bucket = bucket
        self._client = client
        self.expires_s = expires_s

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _errors(self, doing: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"S3 failed {doing}: {type(exc).__name__}")

    def start(self, key: str, size: int, *, part_bytes: int | None = None) -> MultipartUpload:
        """Open a multipart upload for ``size`` bytes and presign a URL per part.

        Raises
        ------
        StoreUnavailable
        """
        from botocore.exceptions import BotoCoreError, ClientError

        part = part_bytes or part_size_for(size)
        count = max(1, math.ceil(size / part))
        try:
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
            upload_id = str(created["UploadId"])
            parts = [
                PresignedPart(
                    part_number=n,
                    url=self.client.generate_presigned_url(
                        "upload_part",
                        Params={
                            "Bucket": self.bucket,
                            "Key": key,
                            "UploadId": upload_id,
                            "PartNumber": n,
                        },
                        ExpiresIn=self.expires_s,
                    ),
                    first=(n - 1) * part,
                    last=min(n * part, size) - 1,
                )
                for n in range(1, count + 1)
            ]
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("opening the upload", exc) from exc
        return MultipartUpload(key=key, upload_id=upload_id, part_bytes=part, parts=parts)

    def received(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        """The parts S3 holds so far (PartNumber, ETag, Size): what a resume skips."""
        from botocore.exceptions import BotoCoreError, ClientError

        parts: list[dict[str, Any]] = []
        try:
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                parts.extend(page.get("Parts", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("listing the parts", exc) from exc
        return parts

    def complete(self, key: str, upload_id: str, size: int) -> str:
        """Assemble the parts S3 holds; returns the object's ETag.

        Raises
        ------
        InvalidInput
            The parts do not add up to ``size`` (some are missing).
        StoreUnavailable
        """
        from botocore.exceptions import BotoCoreError, ClientError

        parts = self.received(key, upload_id)
        held = sum(int(p["Size"]) for p in parts)
        if held != size:
            raise InvalidInput(
                f"S3 holds {held} of the upload's {size} bytes",
                details={"received_bytes": held},
            )
        try:
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": p["PartNumber"], "ETag": p["ETag"]}
                        for p in sorted(parts, key=lambda p: int(p["PartNumber"]))
                    ]
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("completing the upload", exc) from exc
        return str(done.get("ETag", ""))

    def abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("aborting the upload", exc) from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a project's); returns how many."""
        from botocore.exceptions import BotoCoreError, ClientError

        deleted = 0
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                    deleted += len(keys)
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("deleting the project's objects", exc) from exc
        return deleted
