"""PUT /api/projects/{project_id}/uploads/{upload_id}: one chunk, streamed to storage."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.requests import ClientDisconnect

from common.storage.models import UploadPublic
from common.storage.service import receive_chunk
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.put("/api/projects/{project_id}/uploads/{upload_id}", response_model=UploadPublic)
async def put_chunk(
    project_id: UUID,
    upload_id: UUID,
    request: Request,
    principal: PrincipalDep,
    content_range: Annotated[str | None, Header()] = None,
    offset: Annotated[int | None, Query(ge=0)] = None,
) -> UploadPublic | Response:
    """Write a chunk at its offset (Content-Range or `?offset=`); the last one completes it."""
    try:
        return await receive_chunk(
            project_id=project_id,
            upload_id=upload_id,
            owner_key_id=principal.key_id,
            content_range=content_range,
            offset=offset,
            stream=request.stream(),
            store_=get_project_store(),
        )
    except ClientDisconnect:
        # Nobody reads this answer; what arrived is kept and the status call tells the
        # client where to resume. Not an error worth a stack trace.
        return Response(status_code=499)


handler = make_lambda_handler(create_app([router], docs=False))
