"""Input and output models of project storage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]


class UploadCreate(BaseModel):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="A .zip, .tar.gz or .tgz is unpacked; anything else is kept as this path."
    )
    size: int | None = Field(None, ge=0, description="Total bytes, when known.")
    sha256: Sha256 | None = Field(None, description="Checked once the last byte arrives.")


class UploadPublic(BaseModel):
    upload_id: UUID
    project_id: UUID
    filename: str
    size: int | None
    offset: int = Field(description="Bytes received: the next chunk starts here.")
    state: Literal["receiving", "complete", "failed"]
    sha256: str | None = None
    files: int | None = None
    version: int | None = None
    upload_url: str


class StoredFile(BaseModel):
    path: str
    size: int
    sha256: str
    version: int


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
    version: int
    size_bytes: int
    files: list[StoredFile]
    tree: TreeNode
