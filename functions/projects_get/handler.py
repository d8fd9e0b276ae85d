"""GET /api/projects/{project_id}: the project, its stored files and their tree."""

from uuid import UUID

from fastapi import APIRouter

from common.storage.models import ProjectDetail
from common.storage.service import project_detail
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.get("/api/projects/{project_id}", response_model=ProjectDetail)
async def get(project_id: UUID, principal: PrincipalDep) -> ProjectDetail:
    """The project's metadata, files (size, sha256, version) and file tree."""
    return await run_blocking(
        lambda: project_detail(
            project_id=project_id, owner_key_id=principal.key_id, store_=get_project_store()
        )
    )


handler = make_lambda_handler(create_app([router], docs=False))
