"""POST /api/projects/{project_id}/changes: a verified result as a branch, a commit, a
push and optionally a pull request; on an uploaded project, a new revision (a job)."""

from uuid import UUID

from fastapi import APIRouter

from common.git.changes import ChangeInput, submit_change
from common.git.store import get_git_sync_store
from common.jobs import JobAccepted
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.post(
    "/api/projects/{project_id}/changes",
    response_model=JobAccepted,
    status_code=202,
    responses={409: {"description": "The result is not verified and `force` is not set."}},
)
def apply_change(project_id: UUID, body: ChangeInput, principal: PrincipalDep) -> JobAccepted:
    """Apply a finished fix/optimize/test job's result (or a diff, with `force`) to the
    project: a pushed branch (and a pull or merge request with `open`), or a new
    revision of its uploaded files. The job's result says the branch, commit and PR."""
    return submit_change(
        project_id=project_id, body=body, principal=principal, store=get_git_sync_store()
    )


handler = make_lambda_handler(create_app([router], docs=False))
