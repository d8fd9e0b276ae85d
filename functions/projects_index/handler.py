"""POST /api/projects/{project_id}/index: embed the project's code for semantic search."""

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.jobs import JobAccepted
from common.logs import logger
from common.memory.models import IndexInput, IndexReport
from common.memory.project_index import submit_index
from common.projects import index_project
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.post(
    "/api/projects/{project_id}/index",
    response_model=IndexReport,
    responses={202: {"model": JobAccepted, "description": "The stored files, as a job"}},
)
async def index(
    project_id: UUID, principal: PrincipalDep, body: IndexInput | None = None
) -> IndexReport | JSONResponse:
    """With `files`: keep them as the project's files and index them now (small inputs).
    Without a body: (re)index the stored files as a job (202); unchanged code is not
    embedded again either way."""
    if body is None or body.files is None:
        logger.info("index project as a job", extra={"project_id": str(project_id)})
        accepted = await run_blocking(
            lambda: submit_index(project_id=project_id, principal=principal)
        )
        return JSONResponse(
            accepted.model_dump(mode="json"),
            status_code=202,
            headers={"Location": accepted.status_url},
        )
    files = body.files
    logger.info(
        "index project",
        extra={
            "project_id": str(project_id),
            "files": len(files),
            "chars": sum(len(text) for text in files.values()),
        },
    )
    return await run_blocking(
        lambda: index_project(
            project_id=project_id,
            owner_key_id=principal.key_id,
            files=files,
            store=get_project_store(),
        )
    )


handler = make_lambda_handler(create_app([router], docs=False))
