"""Inputs and outputs of indexing and searching a project's code."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

# A request may carry this many files (the body limit, MAX_BODY_BYTES, caps the bytes).
MAX_FILES = 2000
MAX_FILE_CHARS = 2_000_000
MAX_PATH_CHARS = 512
MAX_QUERY_CHARS = 2000

_DRIVE = re.compile(r"^[A-Za-z]:")


def check_path(path: str) -> str:
    """``path`` when it is a normalised relative POSIX path inside the project.

    Raises
    ------
    ValueError
        Empty, too long, absolute, with a drive letter or a backslash, with ``.``,
        ``..`` or empty segments, or with a control character (NUL included). The
        message never repeats the path.
    """
    if not path:
        raise ValueError("path must not be empty")
    if len(path) > MAX_PATH_CHARS:
        raise ValueError(f"path must be at most {MAX_PATH_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError("path must not contain control characters (NUL included)")
    if "\\" in path:
        raise ValueError("path must use / as separator, not \\")
    if path.startswith("/") or _DRIVE.match(path):
        raise ValueError("path must be relative to the project root")
    segments = path.split("/")
    if ".." in segments:
        raise ValueError("path must not contain '..'")
    if "." in segments or "" in segments:
        raise ValueError("path must be normalised (no '.', '//' or trailing '/')")
    return path


ProjectPath = Annotated[str, AfterValidator(check_path)]
FileContent = Annotated[str, Field(max_length=MAX_FILE_CHARS)]


class IndexInput(BaseModel):
    """The project's files, path -> content: the whole set, not a change list.

    A file indexed before and missing here is removed from the index. Without
    ``files`` (or without a body) the stored files are indexed, as a job.
    """

    files: dict[ProjectPath, FileContent] | None = Field(
        None,
        max_length=MAX_FILES,
        description="Relative POSIX path -> file content; absent: index the stored files.",
    )


class IndexReport(BaseModel):
    """What one indexing did."""

    files: int = Field(description="Files received.")
    chunks_total: int = Field(description="Chunks the files give now.")
    embedded: int = Field(description="Chunks new or changed, embedded by this call.")
    skipped_unchanged: int = Field(description="Chunks already indexed, not embedded again.")
    deleted: int = Field(description="Chunks removed: their file is gone or changed.")
    duration_ms: int
    embedder: str = Field(description="The embedder that made the vectors.")
    dim: int = Field(description="Length of its vectors.")
    recreated: bool = Field(
        False, description="The index was made by another embedder and was rebuilt."
    )
    files_read: int = Field(0, description="Files read and chunked: new or changed ones.")
    revision: str | None = Field(None, description="The revision of the files indexed.")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


class SearchInput(BaseModel):
    query: Annotated[str, AfterValidator(_not_blank)] = Field(
        ..., min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for, in words."
    )
    k: int = Field(5, ge=1, le=50, description="How many hits to return.")


class Hit(BaseModel):
    path: str
    start_line: int
    end_line: int
    symbol: str | None = None
    language: str | None = None
    score: float = Field(description="Cosine similarity to the query, higher is closer.")
    text: str = Field(description="The chunk's text (cut at 1000 characters).")


class SearchOutput(BaseModel):
    hits: list[Hit]
    embedder: str
    revision: str | None = Field(
        None, description="The revision of the last completed index the hits come from."
    )


IndexStateName = Literal["none", "queued", "running", "ready", "failed"]


class IndexFailure(BaseModel):
    code: str
    message: str


class IndexState(BaseModel):
    """Where the project's index stands."""

    state: IndexStateName = "none"
    revision: str | None = Field(None, description="The revision of the last completed index.")
    pending_revision: str | None = Field(
        None, description="The revision a queued or running job is indexing."
    )
    chunks: int = 0
    files: int = 0
    embedder: str | None = None
    indexed_at: datetime | None = None
    job_id: UUID | None = Field(None, description="The latest index job.")
    last_error: IndexFailure | None = None
