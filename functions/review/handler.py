"""POST /api/review: a change judged on what it changed, with suggestions and a verdict."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.review.service import ReviewInput, ReviewOutput, review_request
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["review"])


@router.post(
    "/api/review",
    response_model=ReviewOutput,
    responses={
        202: {"description": "`options.async`: queued as a job {job_id, status_url, ws_url}."}
    },
)
async def review(
    body: ReviewInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> ReviewOutput | JSONResponse:
    """Scan and analyze the files a diff (or a linked project's `base`..`head`) changes;
    keep the findings on the lines it added, each with a checked suggestion when the
    model gives one; a summary; and `fail` when a finding reaches `fail_on`."""
    return await answer_or_job(
        "review",
        body,
        principal=principal,
        as_job=body.options.run_async,
        project_id=body.project_id,
        run=lambda: review_request(
            body,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
