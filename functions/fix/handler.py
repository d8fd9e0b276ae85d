"""POST /api/fix: fix code until its checks and tests pass, and show the proof."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.actions.fix import FixInput, FixOutput, fix_request
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post("/api/fix", response_model=FixOutput, responses={202: {"description": "A job"}})
async def fix(
    body: FixInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> FixOutput | JSONResponse:
    """Fix the code (an error message or a failing test helps); answers with a diff and
    what was verified before and after. `options.async` makes it a job."""
    return await answer_or_job(
        "fix",
        body,
        principal=principal,
        as_job=body.options.run_async,
        project_id=body.project_id,
        run=lambda: fix_request(
            body,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=body.options.max_attempts or settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
