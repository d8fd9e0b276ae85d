"""GET /api/projects/{project_id}/git/status: the link, the workspace's commit, the last runs."""

from uuid import UUID

from fastapi import APIRouter

from common.git.service import GitStatusOutput, git_status
from common.git.store import get_git_sync_store
from common.web import PrincipalDep, SettingsDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.get("/api/projects/{project_id}/git/status", response_model=GitStatusOutput)
def status(project_id: UUID, principal: PrincipalDep, settings: SettingsDep) -> GitStatusOutput:
    """The project's remote, branch and schedule, its workspace's commit and last sync runs."""
    return git_status(
        project_id=project_id,
        owner_key_id=principal.key_id,
        store=get_git_sync_store(),
        settings=settings,
    )


handler = make_lambda_handler(create_app([router], docs=False))
