"""POST /api/optimize: faster or clearer code, its behaviour proven unchanged."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.actions.optimize import OptimizeInput, OptimizeOutput, optimize_request
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post(
    "/api/optimize", response_model=OptimizeOutput, responses={202: {"description": "A job"}}
)
async def optimize(
    body: OptimizeInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> OptimizeOutput | JSONResponse:
    """Improve performance and readability; the given (or generated) tests pass before
    and after, and a `benchmark` entry point is timed before and after."""
    return await answer_or_job(
        "optimize",
        body,
        principal=principal,
        as_job=body.options.run_async,
        project_id=body.project_id,
        run=lambda: optimize_request(
            body,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=body.options.max_attempts or settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
