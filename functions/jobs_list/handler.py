"""GET /api/jobs: the calling key's jobs, newest first, a page at a time."""

from typing import Annotated

from fastapi import APIRouter, Query

from common.jobs import JobPage, list_jobs
from common.paging import DEFAULT_LIMIT, MAX_LIMIT
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["jobs"])


@router.get("/api/jobs", response_model=JobPage)
async def read_jobs(
    principal: PrincipalDep,
    status: Annotated[
        list[str] | None,
        Query(description="queued, running, succeeded, failed, cancelled: repeat or comma list."),
    ] = None,
    kind: Annotated[str | None, Query(description="Only jobs of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Jobs per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> JobPage:
    """The key's jobs newest first (status, progress, error; not the result), and a cursor."""
    return await run_blocking(
        list_jobs, principal=principal, statuses=status, kind=kind, limit=limit, cursor=cursor
    )


handler = make_lambda_handler(create_app([router], docs=False))
