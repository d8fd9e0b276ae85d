"""GET /api/projects/{project_id}/download?path=...: one stored file, HTTP Range served."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query
from fastapi.responses import RedirectResponse, StreamingResponse

from common.storage.service import iter_file, open_download
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.get(
    "/api/projects/{project_id}/download",
    response_class=StreamingResponse,
    response_model=None,
    responses={
        206: {"description": "The range asked for"},
        307: {"description": "S3: the file at a presigned URL, which serves Range too"},
    },
)
async def download(
    project_id: UUID,
    path: Annotated[str, Query(min_length=1)],
    principal: PrincipalDep,
    revision: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    range_: Annotated[str | None, Header(alias="range")] = None,
) -> StreamingResponse | RedirectResponse:
    """The file's bytes, streamed; a `Range: bytes=a-b` gets 206 and that part. With
    `revision`, the file as it was at an earlier revision (one a change replaced)."""
    found = await run_blocking(
        lambda: open_download(
            project_id=project_id,
            owner_key_id=principal.key_id,
            path=path,
            range_header=range_,
            store_=get_project_store(),
            revision=revision,
        )
    )
    if found.url is not None:
        # A function's answer stops at 6 MB: S3 itself serves the bytes (and the Range).
        return RedirectResponse(found.url, status_code=307)
    assert found.path is not None
    first, last = found.span or (0, found.size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(max(last - first + 1, 0)),
        "ETag": f'"{found.sha256}"',
    }
    if found.span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{found.size}"
    return StreamingResponse(
        iter_file(found.path, first, last),
        status_code=206 if found.span is not None else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


handler = make_lambda_handler(create_app([router], docs=False))
