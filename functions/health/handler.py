"""GET /api/health: each store and the model server, up or down, with the fix."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.health import HealthReport, check_health
from common.web import create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["platform"])


@router.get(
    "/api/health",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "Something is down."}},
)
def health() -> JSONResponse:
    """Health of every store and of the model server; 503 lists what is down."""
    report = check_health()
    return JSONResponse(
        report.model_dump(mode="json", exclude_none=True), status_code=503 if report.down else 200
    )


handler = make_lambda_handler(create_app([router], docs=False))
