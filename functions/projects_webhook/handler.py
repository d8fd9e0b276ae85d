"""POST /api/projects/{project_id}/webhook: the project's webhook secret (shown once) and
the URL each host posts its pull request events to."""

from uuid import UUID

from fastapi import APIRouter, Request

from common.review.pull_requests import WebhookSetup, setup_webhook
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["review"])


@router.post("/api/projects/{project_id}/webhook", response_model=WebhookSetup, status_code=201)
async def make_webhook(project_id: UUID, request: Request, principal: PrincipalDep) -> WebhookSetup:
    """A new secret (an earlier one stops verifying): give it and the URL to the host."""
    base = str(request.base_url)
    return await run_blocking(
        lambda: setup_webhook(project_id=project_id, owner_key_id=principal.key_id, base_url=base)
    )


handler = make_lambda_handler(create_app([router], docs=False))
