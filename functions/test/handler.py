"""POST /api/test: unit tests that run green against the given code, with coverage."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.actions.tests import GenerateTestsInput, GenerateTestsOutput, generate_tests
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post(
    "/api/test", response_model=GenerateTestsOutput, responses={202: {"description": "A job"}}
)
async def test(
    body: GenerateTestsInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> GenerateTestsOutput | JSONResponse:
    """Write pytest (Python) or node:test (JavaScript) tests, run them in the sandbox,
    repair or drop the ones that fail, and report line coverage."""
    return await answer_or_job(
        "test",
        body,
        principal=principal,
        as_job=body.options.run_async,
        project_id=body.project_id,
        run=lambda: generate_tests(
            body,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=body.options.max_attempts or settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
