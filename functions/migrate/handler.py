"""POST /api/migrate: move code to another stack as a job; its tests prove the result."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.actions.migrate import MigrateInput
from common.web import PrincipalDep, create_app
from common.web.actions import submit_action
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["code"])


@router.post("/api/migrate", status_code=202, responses={202: {"description": "A job"}})
async def migrate(body: MigrateInput, principal: PrincipalDep) -> JSONResponse:
    """Python 2 to 3, Flask to FastAPI, JavaScript to TypeScript, or any `source` to
    `target`. Always a job: follow `status_url` for progress and the result."""
    return await submit_action("migrate", body, principal=principal, project_id=body.project_id)


handler = make_lambda_handler(create_app([router], docs=False))
