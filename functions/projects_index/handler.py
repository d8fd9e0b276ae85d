"""POST /api/projects/{project_id}/index: embed the project's code for semantic search."""

from uuid import UUID

from fastapi import APIRouter

from common.logs import logger
from common.memory.models import IndexInput, IndexReport
from common.projects import index_project
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.post("/api/projects/{project_id}/index", response_model=IndexReport)
def index(project_id: UUID, body: IndexInput, principal: PrincipalDep) -> IndexReport:
    """Index the project's files (all of them): unchanged code is not embedded again."""
    logger.info(
        "index project",
        extra={
            "project_id": str(project_id),
            "files": len(body.files),
            "chars": sum(len(text) for text in body.files.values()),
        },
    )
    return index_project(
        project_id=project_id,
        owner_key_id=principal.key_id,
        files=body.files,
        store=get_project_store(),
    )


handler = make_lambda_handler(create_app([router], docs=False))
