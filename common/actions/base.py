"""Pieces every code action shares: attempts, context, limits, history, progress."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel

from common.actions.inputs import ActionOptions, CodeInput, is_test_path
from common.agents.checked import Checked
from common.code.languages import language_for_path
from common.errors import ModelOutputInvalid
from common.history import record_history

if TYPE_CHECKING:
    from common.jobs import JobContext
    from common.models.base import ModelClient
    from common.sandbox import Limits

In = TypeVar("In", bound=CodeInput, contravariant=True)

# (step, percent 0-100, message): the shape of JobContext.progress.
Progress = Callable[[str, float, str], None]

# Other files shown to the model: enough to see the tests and the callers.
MAX_CONTEXT_CHARS = 12_000


class AttemptInfo(BaseModel):
    number: int
    ok: bool
    problems: list[str]
    duration_ms: int | None = None
    cached: bool = False


def attempts_of(checked: Checked[Any]) -> list[AttemptInfo]:
    return [
        AttemptInfo(
            number=a.number,
            ok=a.ok,
            problems=a.problems,
            duration_ms=a.duration_ms,
            cached=a.cached,
        )
        for a in checked.attempts
    ]


def attempts_of_failure(error: ModelOutputInvalid) -> list[AttemptInfo]:
    return [
        AttemptInfo(number=a["attempt"], ok=False, problems=a.get("problems", []))
        for a in error.details.get("attempts", [])
    ]


def limits_for(options: ActionOptions) -> Limits:
    from common.sandbox import Limits

    return Limits(wall_s=options.timeout_s)


def context_files(
    files: dict[str, str], paths: Iterable[str], *, limit: int = MAX_CONTEXT_CHARS
) -> str:
    """``paths`` of ``files`` as fenced blocks, up to ``limit`` characters in all."""
    parts: list[str] = []
    used = 0
    for path in paths:
        content = files[path]
        fence = language_for_path(path) or ""
        block = f"`{path}`:\n```{fence}\n{content}\n```"
        if used + len(block) > limit:
            parts.append(f"(`{path}` and further files left out: too long)")
            break
        parts.append(block)
        used += len(block)
    return "\n\n".join(parts)


def memory_context(
    project_id: UUID | None, owner_key_id: UUID | None, query: str, *, exclude: str = ""
) -> str:
    """The project's chunks closest to ``query`` (semantic memory), as fenced snippets.

    Empty without a project, or when the index cannot answer (context is a help,
    not a requirement: the action goes on without it).
    """
    if project_id is None or owner_key_id is None:
        return ""
    from common.errors import AppError
    from common.memory.context import project_context

    try:
        snippets = project_context(project_id=project_id, owner_key_id=owner_key_id, query=query)
    except AppError:
        return ""
    return "\n\n".join(
        f"`{s.path}` lines {s.start_line}-{s.end_line}:\n```\n{s.text}\n```"
        for s in snippets
        if s.path != exclude
    )


def action_context(
    files: dict[str, str],
    primary: str,
    *,
    project_id: UUID | None,
    owner_key_id: UUID | None,
) -> str:
    """What the model sees besides the file it rewrites: the project's closest chunks
    (semantic memory), then the other files, tests first."""
    others = [p for p in sorted(files, key=lambda p: (not is_test_path(p), p)) if p != primary]
    return "\n\n".join(
        part
        for part in (
            memory_context(project_id, owner_key_id, files[primary], exclude=primary),
            context_files(files, others),
        )
        if part
    )


def request_digest(request: BaseModel) -> str:
    payload = json.dumps(request.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def record_action(kind: str, request: BaseModel, result: dict[str, Any]) -> None:
    """One history entry for the whole action (each model attempt has its own too)."""
    record_history({"task": f"action:{kind}", "request_digest": request_digest(request), **result})


class _Action(Protocol[In]):
    def __call__(
        self,
        request: In,
        *,
        owner_key_id: UUID | None,
        model: ModelClient,
        max_attempts: int,
        on_progress: Progress | None = None,
    ) -> BaseModel: ...


def job_runner(
    input_model: type[In], action: _Action[In], *, cancellable: bool = False
) -> Callable[[dict[str, Any], JobContext], dict[str, Any]]:
    """The job kind's runner for ``action``: the same action, run by a worker for the
    job's key, with the job's progress and the request's ``options.max_attempts``.

    Parameters
    ----------
    cancellable:
        ``action`` also takes ``checkpoint``, which it calls between steps: it gets
        the job's cancel check (raising ``JobCancelled`` ends the job "cancelled").
    """

    def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        from common.config import get_settings
        from common.models import get_model_client

        request = input_model.model_validate(input)
        extra: dict[str, Any] = {"checkpoint": ctx.raise_if_cancelled} if cancellable else {}
        output = action(
            request,
            owner_key_id=ctx.key_id,
            model=get_model_client(),
            max_attempts=request.options.max_attempts or get_settings().MAX_ATTEMPTS,
            on_progress=ctx.progress,
            **extra,
        )
        return output.model_dump(mode="json")

    return run_job


def report(progress: Progress | None, step: str, percent: float, message: str = "") -> None:
    if progress is not None:
        progress(step, percent, message)


def per_file(
    progress: Progress | None, step: str, low: float, high: float
) -> Callable[[int, int, str], None] | None:
    """``progress`` as (done, total, path) calls while files are gone through one by one:
    the percent moves from ``low`` to ``high``, about fifty updates however many files
    (each one is an event to every watcher of the job)."""
    if progress is None:
        return None
    report_to = progress

    def on_file(done: int, total: int, path: str) -> None:
        if done == total or done % max(1, total // 50) == 0:
            percent = low + (high - low) * done / max(1, total)
            report_to(step, percent, f"{done} of {total} files: {path}")

    return on_file
