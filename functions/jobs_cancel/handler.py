"""DELETE /api/jobs/{job_id}: cancel a job."""

from uuid import UUID

from fastapi import APIRouter

from common.jobs import JobView, cancel_job
from common.logs import logger
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["jobs"])


@router.delete("/api/jobs/{job_id}", response_model=JobView)
async def delete_job(job_id: UUID, principal: PrincipalDep) -> JobView:
    """Cancel a job: a queued one at once, a running one at its next heartbeat."""
    view = await run_blocking(cancel_job, job_id, principal=principal)
    logger.info("job cancel", extra={"job_id": str(job_id), "status": view.status})
    return view


handler = make_lambda_handler(create_app([router], docs=False))
