"""POST /api/figma/analyze: design tokens, CSS, a Tailwind theme and an inventory from Figma."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from common.figma.models import FigmaAnalyzeOutput, request_body_schema
from common.figma.service import finish_figma, receive_figma
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["design"])

# The body is read as a stream (it may be tens of MB, see FIGMA_MAX_BODY_BYTES), so
# FastAPI does not parse it: its schema is declared here for the docs.
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": request_body_schema()},
        },
    }
}


@router.post(
    "/api/figma/analyze",
    response_model=FigmaAnalyzeOutput,
    responses={
        202: {"description": "`options.async`: queued as a job {job_id, status_url, ws_url}."}
    },
    openapi_extra=_BODY,
)
async def figma_analyze(
    request: Request, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> FigmaAnalyzeOutput | JSONResponse:
    """Tokens (W3C DTCG), CSS variables, a Tailwind theme and the component inventory of a
    Figma file (its JSON, or `file_key` + `token`); `options.components` adds checked code."""
    received = await receive_figma(request.stream(), owner_key_id=principal.key_id)
    return await answer_or_job(
        "figma",
        received.job_input(),
        principal=principal,
        as_job=received.options.run_async,
        run=lambda: finish_figma(
            received,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
