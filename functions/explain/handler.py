"""POST /api/explain: explain a piece of code in plain words."""

from fastapi import APIRouter

from common.agents.universal import ExplainInput, ExplainOutput, explain_request
from common.logs import logger
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post("/api/explain", response_model=ExplainOutput)
async def explain(
    body: ExplainInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> ExplainOutput:
    """Explain code: what it does, how, and what to watch out for."""
    logger.debug("explain", extra={"code_chars": len(body.code or ""), "language": body.language})
    return await run_blocking(
        explain_request, body, principal=principal, model=model, max_attempts=settings.MAX_ATTEMPTS
    )


handler = make_lambda_handler(create_app([router], docs=False))
