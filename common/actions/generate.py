"""/api/generate: a spec → the Lead architect's plan → files from workers → checks →
the project's own tests in the sandbox → repair. Always a job.

A test that fails is sent back to the test file's task and to the tasks of the
files its failure points at (a wrong test and wrong code look alike from outside).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from common.actions.base import Progress, limits_for, record_action, report
from common.actions.inputs import ActionOptions, is_test_path
from common.actions.verify import test_checks
from common.agents.architect import FileCheck, ProjectPlan, build_project, plan_project
from common.agents.workers import WorkTask, default_workers
from common.auth import Principal
from common.code.checks import CheckResult
from common.errors import Conflict, ModelOutputInvalid, NotFound
from common.models.base import ModelClient, Usage

if TYPE_CHECKING:
    from common.jobs import JobContext
    from common.sandbox import Limits


class GenerateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1, max_length=20_000, description="What to build.")
    stack: str = Field("", max_length=200, description="e.g. 'Python 3.12, FastAPI, pytest'.")
    dockerfile: bool = Field(False, description="Add a Dockerfile (the Docker worker).")
    kubernetes: bool = Field(False, description="Add Kubernetes manifests.")
    options: ActionOptions = Field(default_factory=ActionOptions)


class ProjectTestSummary(BaseModel):
    ran: bool
    passed: int
    failed: int
    isolation: str | None = None


class GenerateOutput(BaseModel):
    verified: bool
    name: str
    summary: str
    plan: ProjectPlan | None = Field(description="None when no valid plan came back.")
    files: dict[str, str]
    download_url: str | None = None
    verification: list[FileCheck]
    tests: ProjectTestSummary
    failing: list[str] = Field(description="Files still failing a check after the last round.")
    findings: list[dict[str, Any]] = []
    rounds: int
    model: str
    usage: Usage
    duration_ms: int
    error: dict[str, Any] | None = Field(
        None, description="Why nothing was built: the plan or a file never passed its checks."
    )


def generate_project(
    request: GenerateInput,
    *,
    model: ModelClient,
    max_attempts: int,
    on_progress: Progress | None = None,
) -> GenerateOutput:
    """Plan, build, check and test a project from ``request.spec``.

    No valid plan, or a file whose first version never passed its checks, gives
    ``verified: false`` with ``error`` (the attempts), not an exception.
    """
    started = time.monotonic()
    limits = limits_for(request.options)
    tests = _ProjectTests(limits, request.options.run_tests)

    def progress(message: str, fraction: float) -> None:
        report(on_progress, "building", 5 + 90 * fraction, message)

    plan: ProjectPlan | None = None
    try:
        report(on_progress, "planning", 2, "asking the architect for a plan")
        plan, plan_usage = plan_project(
            request.spec, model=model, stack=request.stack, max_attempts=max_attempts
        )
        plan = _with_extras(plan, dockerfile=request.dockerfile, kubernetes=request.kubernetes)
        result = build_project(
            request.spec,
            model=model,
            workers=default_workers(),
            stack=request.stack,
            plan=plan,
            project_checks=tests,
            max_attempts=max_attempts,
            max_rounds=max_attempts,
            on_progress=progress,
        )
    except ModelOutputInvalid as exc:
        # The same rule as every action: an answer that says it is not verified,
        # with what was tried; nothing unverified is presented as the project.
        failed = GenerateOutput(
            verified=False,
            name=plan.name if plan else "",
            summary=plan.summary if plan else "",
            plan=plan,
            files={},
            verification=[],
            tests=tests.summary(),
            failing=[],
            rounds=0,
            model=str(exc.details.get("model", model.model)),
            usage=Usage(),
            duration_ms=round((time.monotonic() - started) * 1000),
            error=exc.to_body()["error"],
        )
        record_action("generate", request, {"verified": False, "error": exc.message})
        return failed
    summary = tests.summary()
    output = GenerateOutput(
        verified=not result.failing and (summary.failed == 0),
        name=result.plan.name,
        summary=result.plan.summary,
        plan=result.plan,
        files=result.files,
        verification=result.verification,
        tests=summary,
        failing=result.failing,
        findings=result.findings,
        rounds=result.rounds,
        model=model.model,
        usage=plan_usage + result.usage,
        duration_ms=result.duration_ms,
    )
    record_action(
        "generate",
        request,
        {
            "verified": output.verified,
            "files": len(output.files),
            "rounds": output.rounds,
            "tests": summary.model_dump(),
        },
    )
    return output


def _with_extras(plan: ProjectPlan, *, dockerfile: bool, kubernetes: bool) -> ProjectPlan:
    """The plan, with a Docker and a Kubernetes task when asked and not planned."""
    tasks = list(plan.tasks)
    ids = [t.id for t in tasks]
    workers = {t.worker for t in tasks}
    if dockerfile and "docker" not in workers:
        tasks.append(
            WorkTask(
                id=_fresh("dockerfile", ids),
                path="Dockerfile",
                worker="docker",
                description="A Dockerfile (and .dockerignore) that builds and runs this project.",
                depends_on=ids,
            )
        )
    if kubernetes and "kubernetes" not in workers:
        tasks.append(
            WorkTask(
                id=_fresh("kubernetes", ids),
                path="k8s/manifests.yaml",
                worker="kubernetes",
                description="Kubernetes Deployment, Service and Ingress for this project.",
                depends_on=[t.id for t in tasks],
            )
        )
    if len(tasks) == len(plan.tasks):
        return plan
    return ProjectPlan.model_validate(
        {**plan.model_dump(), "tasks": [t.model_dump() for t in tasks]}
    )


def _fresh(base: str, ids: list[str]) -> str:
    name, n = base, 1
    while name in ids:
        n += 1
        name = f"{base}{n}"
    return name


class _ProjectTests:
    """The architect's project check: run the project's tests, blame files by name."""

    def __init__(self, limits: Limits, enabled: bool) -> None:
        self.limits, self.enabled = limits, enabled
        self.last: list[CheckResult] = []
        self.ran = False
        self.isolation: str | None = None

    def __call__(self, files: dict[str, str]) -> dict[str, list[CheckResult]]:
        if not self.enabled or not any(is_test_path(p) for p in files):
            return {}
        results, reports = test_checks(files, limits=self.limits)
        self.last = results
        self.ran = any(r.ran for r in reports)
        self.isolation = next((r.isolation for r in reports if r.ran), None)
        blamed: dict[str, list[CheckResult]] = {}
        for check in results:
            if check.ok:
                continue
            for path in _paths_named(check, files):
                blamed.setdefault(path, []).append(check)
        return blamed

    def summary(self) -> ProjectTestSummary:
        tests = [c for c in self.last if c.name.startswith("test:") or c.name == "tests"]
        return ProjectTestSummary(
            ran=self.ran,
            passed=sum(1 for c in tests if c.ok and c.ran),
            failed=sum(1 for c in tests if not c.ok),
            isolation=self.isolation,
        )


def _paths_named(check: CheckResult, files: dict[str, str]) -> list[str]:
    """The test file of a failing case and the source files its message names."""
    named = []
    case_file = check.name.removeprefix("test:").split("::", 1)[0]
    if case_file in files:
        named.append(case_file)
    for path in files:
        if path in named or is_test_path(path):
            continue
        stem = PurePosixPath(path).stem
        if path in check.message or f"{stem}." in check.message or f"'{stem}'" in check.message:
            named.append(path)
    if not named:
        named = [p for p in files if is_test_path(p)][:1]
    return named


def zip_files(files: dict[str, str], *, root: str = "") -> bytes:
    """``files`` as a zip archive (under ``root/`` when given)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, content in sorted(files.items()):
            archive.writestr(f"{root}/{path}" if root else path, content)
    return buffer.getvalue()


def job_files_zip(job_id: UUID, *, principal: Principal) -> tuple[str, bytes]:
    """(a file name, the zip) of the files in the result of the caller's job ``job_id``.

    Raises
    ------
    NotFound
        No such job of this key, or a job whose result has no files.
    Conflict
        The job has not succeeded (yet).
    """
    from common.jobs import get_job

    job = get_job(job_id, principal=principal)
    if job.status != "succeeded":
        raise Conflict(f"the job is {job.status}: files exist once it has succeeded")
    files = (job.result or {}).get("files")
    if not isinstance(files, dict) or not files:
        raise NotFound(f"job {job_id} produced no files")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str((job.result or {}).get("name") or job.kind))
    name = name.strip("-.") or "project"
    return name, zip_files({str(p): str(c) for p, c in files.items()}, root=name)


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The ``generate`` job kind (generation always runs as a job)."""
    from common.config import get_settings
    from common.models import get_model_client

    request = GenerateInput.model_validate(input)
    output = generate_project(
        request,
        model=get_model_client(),
        max_attempts=request.options.max_attempts or get_settings().MAX_ATTEMPTS,
        on_progress=ctx.progress,
    )
    output.download_url = f"/api/jobs/{ctx.job_id}/files.zip"
    return output.model_dump(mode="json")
