"""POST /api/projects/{project_id}/uploads: open a resumable upload."""

from uuid import UUID

from fastapi import APIRouter

from common.storage.models import UploadCreate, UploadPublic
from common.storage.service import start_upload
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.post("/api/projects/{project_id}/uploads", response_model=UploadPublic, status_code=201)
async def start(project_id: UUID, body: UploadCreate, principal: PrincipalDep) -> UploadPublic:
    """Open an upload; send its bytes in chunks to `upload_url` (PUT with Content-Range)."""
    return await run_blocking(
        lambda: start_upload(
            project_id=project_id,
            owner_key_id=principal.key_id,
            body=body,
            store_=get_project_store(),
        )
    )


handler = make_lambda_handler(create_app([router], docs=False))
