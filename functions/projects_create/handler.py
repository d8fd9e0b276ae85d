"""POST /api/projects: create a project owned by the calling key."""

from fastapi import APIRouter

from common.logs import logger
from common.projects import ProjectCreate, ProjectPublic, create_project
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.post("/api/projects", response_model=ProjectPublic, status_code=201)
def create(body: ProjectCreate, principal: PrincipalDep) -> ProjectPublic:
    """Create a project; only the key that creates it can see it."""
    project = create_project(
        name=body.name, owner_key_id=principal.key_id, store=get_project_store()
    )
    logger.info("project created", extra={"project_id": str(project.id)})
    return project


handler = make_lambda_handler(create_app([router], docs=False))
