"""Workers: specialists the Lead architect hands tasks to, each usable on its own.

A worker turns one planned task into files, checked; given ``feedback`` (a failed
check from the architect's final pass) it tries again with that problem in hand.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from common.models.base import ModelClient, Usage

WorkerName = Literal["code", "docker", "kubernetes", "security"]


class WorkTask(BaseModel):
    """One task of a plan: write (or rewrite) one file."""

    id: str = Field(min_length=1, max_length=40)
    path: str = Field(min_length=1, max_length=300)
    worker: WorkerName = "code"
    description: str = Field(min_length=1, max_length=4000)
    depends_on: list[str] = []


class WorkerOutput(BaseModel):
    files: dict[str, str]
    checks: list[dict[str, Any]] = []
    # Problems the worker found and could not fix (reported, not hidden).
    findings: list[dict[str, Any]] = []
    usage: Usage = Usage()
    attempts: int = 1


class Worker(Protocol):
    name: WorkerName

    def run(
        self,
        task: WorkTask,
        *,
        model: ModelClient,
        project: str,
        inputs: dict[str, str],
        feedback: str | None = None,
        max_attempts: int = 3,
    ) -> WorkerOutput:
        """Do ``task`` for ``project`` (a one-line description), seeing ``inputs``
        (the files of the tasks it depends on)."""
        ...


def default_workers() -> dict[WorkerName, Worker]:
    """One of each worker, for the Lead architect."""
    from common.agents.workers.code import CodeWorker
    from common.agents.workers.docker import DockerWorker
    from common.agents.workers.kubernetes import KubernetesWorker
    from common.agents.workers.security import SecurityWorker

    return {
        "code": CodeWorker(),
        "docker": DockerWorker(),
        "kubernetes": KubernetesWorker(),
        "security": SecurityWorker(),
    }
