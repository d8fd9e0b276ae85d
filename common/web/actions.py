"""One way for an action route to answer now or with a job (202)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from common.auth import Principal
from common.web.deps import run_blocking

T = TypeVar("T")


async def answer_or_job(
    kind: str,
    request: BaseModel,
    *,
    principal: Principal,
    as_job: bool,
    project_id: UUID | None = None,
    run: Callable[[], T],
) -> T | JSONResponse:
    """``run()`` in the thread pool, or, when ``as_job``, a queued job and a 202.

    The job carries ``request`` as JSON; the job kind's runner validates it again.
    """
    if not as_job:
        return await run_blocking(run)
    return await submit_action(kind, request, principal=principal, project_id=project_id)


async def submit_action(
    kind: str, request: BaseModel, *, principal: Principal, project_id: UUID | None = None
) -> JSONResponse:
    """Queue ``request`` as a job of ``kind``: 202 with where to follow it.

    A ``project_id`` that is not the caller's is refused now (404), not by the job.
    """
    from common.actions.inputs import job_input
    from common.jobs import submit_job

    if project_id is not None:
        await run_blocking(_own_project, project_id, principal)

    accepted = await run_blocking(
        submit_job,
        kind=kind,
        input=job_input(request),
        principal=principal,
        project_id=project_id,
    )
    body: dict[str, Any] = accepted.model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": accepted.status_url})


def _own_project(project_id: UUID, principal: Principal) -> None:
    from common.projects import get_project
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=principal.key_id, store=get_project_store())
