"""POST /api/projects/{project_id}/git/link: link a project to a git remote and schedule."""

from uuid import UUID

from fastapi import APIRouter

from common.git.service import GitLinkInput, GitLinkPublic, link_project
from common.git.store import get_git_sync_store
from common.logs import logger
from common.web import PrincipalDep, SettingsDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.post("/api/projects/{project_id}/git/link", response_model=GitLinkPublic)
def link(
    project_id: UUID, body: GitLinkInput, principal: PrincipalDep, settings: SettingsDep
) -> GitLinkPublic:
    """Link the project to an https or ssh remote (public hosts only), a branch and
    an optional sync schedule; the token comes from /api/git/credentials."""
    linked = link_project(
        project_id=project_id,
        owner_key_id=principal.key_id,
        body=body,
        store=get_git_sync_store(),
        settings=settings,
    )
    logger.info("git linked", extra={"project_id": str(project_id)})
    return linked


handler = make_lambda_handler(create_app([router], docs=False))
