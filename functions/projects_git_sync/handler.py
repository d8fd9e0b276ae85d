"""POST /api/projects/{project_id}/git/sync: clone or pull, then push (a job)."""

from uuid import UUID

from fastapi import APIRouter

from common.git.service import GitSyncInput, submit_sync
from common.git.store import get_git_sync_store
from common.jobs import JobAccepted
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.post("/api/projects/{project_id}/git/sync", response_model=JobAccepted, status_code=202)
def sync(project_id: UUID, body: GitSyncInput, principal: PrincipalDep) -> JobAccepted:
    """Sync the project's workspace with its remote: a job; follow it at status_url."""
    return submit_sync(
        project_id=project_id, principal=principal, body=body, store=get_git_sync_store()
    )


handler = make_lambda_handler(create_app([router], docs=False))
