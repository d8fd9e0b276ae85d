"""POST /api/generate: a whole project from a spec, planned, built, tested; a job."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.actions.generate import GenerateInput
from common.web import PrincipalDep, create_app
from common.web.actions import submit_action
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post("/api/generate", status_code=202, responses={202: {"description": "A job"}})
async def generate(body: GenerateInput, principal: PrincipalDep) -> JSONResponse:
    """The Lead architect plans the files, workers write them, the checks and the
    project's own tests run, failures go back. Always a job: its result has the files
    and `download_url` (a zip)."""
    return await submit_action("generate", body, principal=principal)


handler = make_lambda_handler(create_app([router], docs=False))
