"""DELETE /api/projects/{project_id}: the project and everything it keeps."""

from uuid import UUID

from fastapi import APIRouter, Response

from common.storage.service import delete_project
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.delete("/api/projects/{project_id}", status_code=204, response_class=Response)
async def delete(project_id: UUID, principal: PrincipalDep) -> Response:
    """Remove the project's files, metadata, vectors, jobs and the project itself."""
    await run_blocking(
        lambda: delete_project(
            project_id=project_id, owner_key_id=principal.key_id, store_=get_project_store()
        )
    )
    return Response(status_code=204)


handler = make_lambda_handler(create_app([router], docs=False))
