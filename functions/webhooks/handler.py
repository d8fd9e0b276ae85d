"""POST /api/webhooks/{provider}: a pull request opened or updated on GitHub, GitLab or
Bitbucket, verified by its signature, reviewed by a job and posted back."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from common.review.pull_requests import WebhookAnswer, receive_webhook
from common.web import create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["review"])


@router.post(
    "/api/webhooks/{provider}",
    response_model=WebhookAnswer,
    status_code=202,
    responses={401: {"description": "The signature does not verify: nothing runs."}},
)
async def webhook(
    provider: str,
    request: Request,
    project: Annotated[UUID | None, Query(description="The project the hook is for.")] = None,
) -> JSONResponse:
    """No API key: the host signs each delivery with the project's webhook secret
    (GitHub `X-Hub-Signature-256`, GitLab `X-Gitlab-Token`, Bitbucket `X-Hub-Signature`).
    A replayed delivery id does nothing twice."""
    body = await request.body()
    headers = dict(request.headers)
    answer = await run_blocking(
        lambda: receive_webhook(provider, headers=headers, body=body, project=project)
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=202)


handler = make_lambda_handler(create_app([router], docs=False))
