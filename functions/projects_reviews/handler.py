"""GET /api/projects/{project_id}/reviews: its pull request reviews, newest first."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from common.review.pull_requests import review_history
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["review"])


@router.get("/api/projects/{project_id}/reviews")
async def reviews(
    project_id: UUID,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Each review: the pull request, verdict, counts by severity and its report id."""
    items = await run_blocking(
        lambda: review_history(project_id=project_id, owner_key_id=principal.key_id, limit=limit)
    )
    return {"items": items}


handler = make_lambda_handler(create_app([router], docs=False))
