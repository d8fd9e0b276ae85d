"""S3 for project uploads on AWS: multipart uploads whose parts go by presigned URLs.

On Lambda a request body stops at 6 MB and a function at 29 s, so the bytes of a big
upload must not pass through a function: the client PUTs each part straight to S3 at
a presigned URL, and a function only opens and completes the multipart upload. The
part ETags are read back from S3 (``list_parts``) rather than trusted from the client.

boto3 is imported on first use: cold starts count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
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


def part_spans(size: int, part_bytes: int) -> list[tuple[int, int, int]]:
    """(part number, first byte, last byte) of each part; an empty file is one empty part."""
    count = max(1, math.ceil(size / part_bytes))
    return [(n, (n - 1) * part_bytes, min(n * part_bytes, size) - 1) for n in range(1, count + 1)]


class S3Storage:
    """Multipart uploads into ``bucket``.

    Parameters
    ----------
    bucket:
        The projects bucket (``PROJECTS_BUCKET``; ``ProjectsBucket`` in template.yaml).
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
            from botocore.config import Config

            # SigV4 presigned URLs: the older signature some SDK versions still default
            # to for presigning is refused in newer regions.
            self._client = boto3.client("s3", config=Config(signature_version="s3v4"))
        return self._client

    def _errors(self, doing: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"S3 failed {doing}: {type(exc).__name__}")

    def create(self, key: str) -> str:
        """Open a multipart upload at ``key``; returns its S3 upload id.

        Raises
        ------
        StoreUnavailable
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("opening the upload", exc) from exc
        return str(created["UploadId"])

    def presign_part(self, key: str, upload_id: str, part_number: int) -> str:
        """A URL the client PUTs part ``part_number``'s bytes to (no credentials needed)."""
        # Presigning is local computation (no request to S3), so it cannot fail on the wire.
        return str(
            self.client.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": part_number,
                },
                ExpiresIn=self.expires_s,
            )
        )

    def presign_get(self, key: str, filename: str) -> str:
        """A URL that serves the object (S3 answers Range itself), saved as ``filename``."""
        safe = filename.replace('"', "")
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{safe}"',
                },
                ExpiresIn=self.expires_s,
            )
        )

    def start(self, key: str, size: int, *, part_bytes: int | None = None) -> MultipartUpload:
        """Open a multipart upload for ``size`` bytes and presign a URL per part.

        Raises
        ------
        StoreUnavailable
        """
        part = part_bytes or part_size_for(size)
        upload_id = self.create(key)
        parts = [
            PresignedPart(
                part_number=n,
                url=self.presign_part(key, upload_id, n),
                first=first,
                last=last,
            )
            for n, first, last in part_spans(size, part)
        ]
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

    def head_size(self, key: str) -> int | None:
        """The object's size, or None when there is none at ``key``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._errors("reading an object's size", exc) from exc
        except BotoCoreError as exc:
            raise self._errors("reading an object's size", exc) from exc
        return int(found["ContentLength"])

    def iter_object(self, key: str, piece_bytes: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes, ``piece_bytes`` at a time: memory stays flat at any size."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                yield from body.iter_chunks(piece_bytes)
            finally:
                body.close()
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("reading an object", exc) from exc

    def put_file(self, path: Path, key: str) -> None:
        """Upload a local file (s3transfer: multipart past 8 MB, a few parts in memory)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(path), self.bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("storing a file", exc) from exc

    def copy(self, source: str, target: str) -> None:
        """Copy inside the bucket, server side (a multipart copy past 5 GB)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target)
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("copying an object", exc) from exc

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._errors("deleting an object", exc) from exc

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


@lru_cache(maxsize=4)
def _storage(bucket: str, expires_s: int, endpoint: str | None) -> S3Storage:
    return S3Storage(bucket, expires_s=expires_s)


def get_s3_storage() -> S3Storage | None:
    """The projects bucket when ``PROJECTS_BUCKET`` is set, else None (files on disk).

    Cached per bucket and endpoint (``AWS_ENDPOINT_URL_S3``, which boto3 reads itself and
    tests point at a moto server), so a test that changes them gets a fresh client.
    """
    import os

    from common.config import get_settings

    settings = get_settings()
    if not settings.PROJECTS_BUCKET:
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return _storage(settings.PROJECTS_BUCKET, settings.UPLOAD_URL_EXPIRES_SECONDS, endpoint)


reset_s3_storage = _storage.cache_clear
