"""GET /api/jobs/{job_id}/files.zip: the files a finished job produced, as a zip."""

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from common.actions.generate import job_files_zip
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["jobs"])


@router.get(
    "/api/jobs/{job_id}/files.zip",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def download(job_id: UUID, principal: PrincipalDep) -> Response:
    """The generated (or migrated) project as a zip archive."""
    name, data = await run_blocking(job_files_zip, job_id, principal=principal)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


handler = make_lambda_handler(create_app([router], docs=False))
