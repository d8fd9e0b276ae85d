"""PUT /api/projects/{project_id}/review/settings: what its pull requests are reviewed with."""

from uuid import UUID

from fastapi import APIRouter

from common.review.service import ReviewSettings, save_review_settings
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["review"])


@router.put("/api/projects/{project_id}/review/settings", response_model=ReviewSettings)
async def put_settings(
    project_id: UUID, body: ReviewSettings, principal: PrincipalDep
) -> ReviewSettings:
    """Which checks run on the project's pull requests, and the severity that fails
    their status (`high` by default)."""
    return await run_blocking(save_review_settings, project_id, principal.key_id, body)


handler = make_lambda_handler(create_app([router], docs=False))
