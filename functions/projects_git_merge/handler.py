"""POST /api/projects/{project_id}/git/merge: merge a branch, AI-resolving conflicts (a job)."""

from uuid import UUID

from fastapi import APIRouter

from common.git.service import GitMergeInput, submit_merge
from common.git.store import get_git_sync_store
from common.jobs import JobAccepted
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.post("/api/projects/{project_id}/git/merge", response_model=JobAccepted, status_code=202)
def merge(project_id: UUID, body: GitMergeInput, principal: PrincipalDep) -> JobAccepted:
    """Merge `branch` into the project's branch and push; conflicts get a checked
    proposal, committed with `auto` when its checks pass, or later with `accept`."""
    return submit_merge(
        project_id=project_id, principal=principal, body=body, store=get_git_sync_store()
    )


handler = make_lambda_handler(create_app([router], docs=False))
