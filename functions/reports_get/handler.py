"""GET /api/reports/{report_id}: a stored report of the calling key."""

from typing import Any

from fastapi import APIRouter

from common.logs import logger
from common.reports import get_report
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["reports"])


@router.get("/api/reports/{report_id}", response_model=dict[str, Any])
async def read_report(report_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """A report as it was answered when made (an analysis; later, security scans)."""
    logger.debug("get report", extra={"report_id": report_id[:64]})
    return await run_blocking(get_report, report_id, key_id=principal.key_id)


handler = make_lambda_handler(create_app([router], docs=False))
