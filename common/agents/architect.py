"""The Lead architect: plan a project, hand tasks to workers, assemble, check, send back.

1. Plan: the model turns the request into tasks (one file each, a worker each, the
   tasks each depends on), validated as a DAG with safe, unique paths.
2. Build: tasks run in dependency order; each worker sees the files its task
   depends on and returns checked files.
3. Verify: every file is checked again as part of the whole (parse, lint, and any
   project checks the caller adds, such as running the tests in a sandbox); a file
   that fails goes back to its worker with the error, up to ``max_rounds``.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import Any

from pydantic import BaseModel, Field, model_validator

from common.agents import prompts
from common.agents.checked import ask_json
from common.agents.workers import Worker, WorkerName, WorkTask
from common.code.checks import CheckResult, check_code
from common.code.languages import language_for_path
from common.logs import get_logger
from common.models.base import ModelClient, Usage

log = get_logger("agents.architect")

MAX_TASKS = 40


def safe_path(path: str) -> str:
    """``path`` normalised, or ValueError when it is absolute, escapes, or holds NUL."""
    if "\0" in path or path.startswith(("/", "\\")) or ":" in path.split("/")[0]:
        raise ValueError(f"{path!r} must be a relative path")
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal in ("", ".") or normal == ".." or normal.startswith("../"):
        raise ValueError(f"{path!r} escapes the project")
    return normal


class ProjectPlan(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    summary: str = Field("", max_length=2000)
    tasks: list[WorkTask] = Field(min_length=1, max_length=MAX_TASKS)

    @model_validator(mode="after")
    def _a_valid_dag(self) -> ProjectPlan:
        ids = [t.id for t in self.tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("task ids must be unique")
        paths = []
        for task in self.tasks:
            task.path = safe_path(task.path)
            paths.append(task.path)
            unknown = set(task.depends_on) - set(ids)
            if unknown:
                raise ValueError(f"task {task.id} depends on unknown tasks {sorted(unknown)}")
        if len(set(paths)) != len(paths):
            raise ValueError("each task must write a different file")
        try:
            self.order()
        except CycleError as exc:
            raise ValueError(f"tasks depend on each other in a cycle: {exc.args[1]}") from None
        return self

    def order(self) -> list[WorkTask]:
        by_id = {t.id: t for t in self.tasks}
        sorter = TopologicalSorter({t.id: set(t.depends_on) for t in self.tasks})
        return [by_id[i] for i in sorter.static_order()]


class FileCheck(BaseModel):
    path: str
    checks: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


class ProjectResult(BaseModel):
    plan: ProjectPlan
    files: dict[str, str]
    verification: list[FileCheck]
    rounds: int
    usage: Usage
    duration_ms: int
    findings: list[dict[str, Any]] = []
    # Files still failing after the last round (reported, never silently returned as good).
    failing: list[str] = []


ProjectCheck = Callable[[dict[str, str]], dict[str, list[CheckResult]]]
Progress = Callable[[str, float], None]


def plan_project(
    request: str, *, model: ModelClient, stack: str = "", max_attempts: int = 3
) -> tuple[ProjectPlan, Usage]:
    """A validated plan for ``request``."""
    messages = prompts.render("plan", request=request, stack=stack or "the model's choice")
    checked = ask_json(model, messages, ProjectPlan, task="plan", max_attempts=max_attempts)
    return checked.value, checked.usage


def build_project(
    request: str,
    *,
    model: ModelClient,
    workers: Mapping[WorkerName, Worker],
    stack: str = "",
    plan: ProjectPlan | None = None,
    project_checks: ProjectCheck | None = None,
    max_attempts: int = 3,
    max_rounds: int = 2,
    on_progress: Progress | None = None,
) -> ProjectResult:
    """Plan (unless ``plan`` is given), build with ``workers`` and verify the whole.

    Raises
    ------
    ModelOutputInvalid
        The plan, or a task's first version, never passed its checks.
    """
    started = time.monotonic()
    usage = Usage()
    if plan is None:
        plan, used = plan_project(request, model=model, stack=stack, max_attempts=max_attempts)
        usage = usage + used
    project = f"{plan.name}: {plan.summary or request[:300]}"
    order = plan.order()
    files: dict[str, str] = {}
    findings: list[dict[str, Any]] = []
    path_of = {t.id: t.path for t in plan.tasks}

    def run(task: WorkTask, feedback: str | None) -> None:
        nonlocal usage
        worker = workers.get(task.worker) or workers["code"]
        inputs = {path_of[d]: files[path_of[d]] for d in task.depends_on if path_of[d] in files}
        out = worker.run(
            task,
            model=model,
            project=project,
            inputs=inputs,
            feedback=feedback,
            max_attempts=max_attempts,
        )
        usage = usage + out.usage
        files.update(out.files)
        findings.extend({"task": task.id, **f} for f in out.findings)

    for index, task in enumerate(order, 1):
        _progress(on_progress, f"task {task.id}: {task.path}", index / (len(order) + 1))
        run(task, None)

    rounds = 1
    verification = _verify(files, project_checks)
    while True:
        failing = [v for v in verification if not v.ok]
        if not failing or rounds > max_rounds:
            break
        rounds += 1
        for failed in failing:
            owner = next((t for t in order if t.path == failed.path), None)
            if owner is None:
                continue  # a file a worker added beside its own: reported, not rebuilt
            problems = "\n".join(
                f"- {c['name']}: {c.get('message', '')}" for c in failed.checks if not c["ok"]
            )
            log.info("sending a task back", extra={"task": owner.id, "round": rounds})
            run(owner, problems)
        verification = _verify(files, project_checks)
    _progress(on_progress, "verified", 1.0)
    return ProjectResult(
        plan=plan,
        files=dict(sorted(files.items())),
        verification=verification,
        rounds=rounds,
        usage=usage,
        duration_ms=round((time.monotonic() - started) * 1000),
        findings=findings,
        failing=[v.path for v in verification if not v.ok],
    )


def _verify(files: dict[str, str], project_checks: ProjectCheck | None) -> list[FileCheck]:
    extra = project_checks(files) if project_checks else {}
    results = []
    for path, content in sorted(files.items()):
        checks = check_code(content, language_for_path(path)) + extra.get(path, [])
        results.append(FileCheck(path=path, checks=[c.to_dict() for c in checks]))
    return results


def _progress(callback: Progress | None, message: str, fraction: float) -> None:
    if callback is not None:
        callback(message, round(fraction, 3))
