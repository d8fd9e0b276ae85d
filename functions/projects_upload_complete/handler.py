"""POST /api/projects/{project_id}/uploads/{upload_id}/complete: finish an upload."""

from uuid import UUID

from fastapi import APIRouter, Response

from common.storage.models import UploadPublic
from common.storage.service import complete_upload
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.post(
    "/api/projects/{project_id}/uploads/{upload_id}/complete",
    response_model=UploadPublic,
    responses={202: {"description": "S3: assembled; a job checks and stores it"}},
)
async def complete(
    project_id: UUID, upload_id: UUID, principal: PrincipalDep, response: Response
) -> UploadPublic:
    """Finish an upload once all its bytes are sent (S3: assemble the parts, then verify)."""
    done = await run_blocking(
        lambda: complete_upload(
            project_id=project_id,
            upload_id=upload_id,
            principal=principal,
            store_=get_project_store(),
        )
    )
    if done.state == "verifying":
        response.status_code = 202
    return done


handler = make_lambda_handler(create_app([router], docs=False))
