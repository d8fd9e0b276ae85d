"""GET /api/projects: the calling key's projects, newest first, a page at a time."""

from typing import Annotated

from fastapi import APIRouter, Query

from common.paging import DEFAULT_LIMIT, MAX_LIMIT
from common.projects import ProjectPage, list_projects
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.get("/api/projects", response_model=ProjectPage)
async def read_projects(
    principal: PrincipalDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Projects per page.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> ProjectPage:
    """The key's projects newest first: size, file count, dates and git link, and a cursor."""
    return await run_blocking(
        lambda: list_projects(
            owner_key_id=principal.key_id, store=get_project_store(), limit=limit, cursor=cursor
        )
    )


handler = make_lambda_handler(create_app([router], docs=False))
