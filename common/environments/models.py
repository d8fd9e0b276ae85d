"""What callers see of a project's dependency environment (pydantic only: an HTTP
handler's response model imports this)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

EnvironmentState = Literal["none", "building", "ready", "failed"]


class EnvironmentSummary(BaseModel):
    """A project's current dependency environment, as found on disk."""

    state: EnvironmentState
    hash: str | None = None
    kind: str | None = None  # "python" | "node" | "python+node" | "none"
    manifests: list[str] = Field(default_factory=list)
    size_bytes: int | None = None
    built_at: datetime | None = None
    error: str | None = None
