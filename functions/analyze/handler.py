"""POST /api/analyze: measure code, have the model review it, and keep the report."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.actions.analyze import AnalyzeOutput, analyze_request
from common.actions.inputs import CodeInput
from common.logs import logger
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post(
    "/api/analyze",
    response_model=AnalyzeOutput,
    responses={
        202: {"description": "`options.async`: queued as a job {job_id, status_url, ws_url}."}
    },
)
async def analyze(
    body: CodeInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> AnalyzeOutput | JSONResponse:
    """Metrics, lint and security findings, and a model's prioritised review; stored as a report."""
    logger.debug(
        "analyze",
        extra={
            "files": len(body.files or {}) or (1 if body.code else 0),
            "project_id": str(body.project_id) if body.project_id else None,
            "async": body.options.run_async,
        },
    )
    return await answer_or_job(
        "analyze",
        body,
        principal=principal,
        as_job=body.runs_as_job(),
        project_id=body.project_id,
        run=lambda: analyze_request(
            body,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
