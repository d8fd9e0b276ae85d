"""GET /api/projects/{project_id}/uploads/{upload_id}: where an upload stands."""

from uuid import UUID

from fastapi import APIRouter

from common.storage.models import UploadPublic
from common.storage.service import upload_status
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.get("/api/projects/{project_id}/uploads/{upload_id}", response_model=UploadPublic)
async def status(project_id: UUID, upload_id: UUID, principal: PrincipalDep) -> UploadPublic:
    """The upload's state; `offset` is where a resumed upload starts again."""
    return await run_blocking(
        lambda: upload_status(
            project_id=project_id, upload_id=upload_id, owner_key_id=principal.key_id
        )
    )


handler = make_lambda_handler(create_app([router], docs=False))
