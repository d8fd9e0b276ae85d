"""Input and output models of project storage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from common.environments.models import EnvironmentSummary
from common.memory.models import IndexState
from common.storage.tree import FileKind, Source

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]


class UploadCreate(BaseModel):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="A .zip, .tar.gz or .tgz is unpacked; anything else is kept as this path."
    )
    size: int | None = Field(None, ge=0, description="Total bytes, when known.")
    sha256: Sha256 | None = Field(None, description="Checked once the last byte arrives.")


class UploadPart(BaseModel):
    part_number: int
    first: int = Field(description="The part's first byte in the file.")
    last: int = Field(description="Its last byte (inclusive).")
    url: str = Field(description="PUT the part's bytes here (presigned: no API key).")


class UploadPublic(BaseModel):
    upload_id: UUID
    project_id: UUID
    filename: str
    size: int | None
    offset: int = Field(
        description="Bytes received: the next chunk starts here (S3: bytes in the parts held)."
    )
    state: Literal["receiving", "verifying", "complete", "failed"]
    sha256: str | None = None
    files: int | None = None
    version: int | None = None
    upload_url: str
    complete_url: str = Field(description="POST here once every byte or part is sent.")
    backend: Literal["local", "s3"] = Field(
        "local", description="local: PUT chunks to upload_url; s3: PUT parts to their urls."
    )
    part_bytes: int | None = Field(None, description="S3: every part's size but the last's.")
    received_parts: list[int] | None = Field(None, description="S3: part numbers S3 holds.")
    parts: list[UploadPart] | None = Field(
        None, description="S3: the parts still to send, with fresh presigned URLs."
    )
    job_id: UUID | None = Field(None, description="S3: the job that checks and unpacks it.")
    error_code: str | None = Field(None, description="S3: why the job refused it.")


class StoredFile(BaseModel):
    path: str
    size: int
    sha256: str
    version: int
    kind: FileKind = Field("text", description="text: read as code; binary, oversized: not.")
    reason: str | None = Field(None, description="Why the file is not read as code.")


class TreeNode(BaseModel):
    name: str
    path: str
    type: Literal["dir", "file"]
    size: int
    children: list[TreeNode] | None = None


class ProjectDetail(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    version: int = Field(description="The files' version: one more each change.")
    size_bytes: int
    files: list[StoredFile]
    tree: TreeNode
    source: Source = Field(description="Where the files came from, at which revision.")
    index: IndexState = Field(description="The index: the revision indexed, chunks, job.")
    environment: EnvironmentSummary | None = Field(
        None, description="The dependencies' environment built from the manifests."
    )
