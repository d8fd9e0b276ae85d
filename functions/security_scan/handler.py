"""POST /api/security/scan: SAST, secrets and dependencies as SARIF, with checked fixes."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.logs import logger
from common.security.models import SecurityScanInput, SecurityScanOutput
from common.security.scan import security_scan_request
from common.web import ModelDep, PrincipalDep, SettingsDep, create_app
from common.web.actions import answer_or_job
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["security"])


@router.post(
    "/api/security/scan",
    response_model=SecurityScanOutput,
    responses={
        202: {"description": "`options.async`: queued as a job {job_id, status_url, ws_url}."}
    },
)
async def security_scan(
    body: SecurityScanInput, principal: PrincipalDep, model: ModelDep, settings: SettingsDep
) -> SecurityScanOutput | JSONResponse:
    """Scan code for vulnerabilities, secrets and vulnerable dependencies (SARIF 2.1.0);
    with `fix`, propose fixes each proven by a re-scan and the tests. Stored as a report."""
    logger.debug(
        "security scan",
        extra={
            "files": len(body.files or {}) or (1 if body.code else 0),
            "project_id": str(body.project_id) if body.project_id else None,
            "fix": body.fix,
            "async": body.options.run_async,
        },
    )
    return await answer_or_job(
        "security_scan",
        body,
        principal=principal,
        as_job=body.runs_as_job(),
        project_id=body.project_id,
        run=lambda: security_scan_request(
            body,
            owner_key_id=principal.key_id,
            model=model,
            max_attempts=body.options.max_attempts or settings.MAX_ATTEMPTS,
        ),
    )


handler = make_lambda_handler(create_app([router], docs=False))
