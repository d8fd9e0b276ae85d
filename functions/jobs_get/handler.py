"""GET /api/jobs/{job_id}: a job's status, progress and result."""

from uuid import UUID

from fastapi import APIRouter

from common.jobs import JobView, get_job
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["jobs"])


@router.get("/api/jobs/{job_id}", response_model=JobView)
async def read_job(job_id: UUID, principal: PrincipalDep) -> JobView:
    """A job's status, progress (step, percent, last message), and its result or error."""
    return await run_blocking(get_job, job_id, principal=principal)


handler = make_lambda_handler(create_app([router], docs=False))
