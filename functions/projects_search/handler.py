"""POST /api/projects/{project_id}/search: find the project's code by meaning."""

from uuid import UUID

from fastapi import APIRouter

from common.logs import logger
from common.memory.models import SearchInput, SearchOutput
from common.projects import search_project
from common.stores.projects_store import get_project_store
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["projects"])


@router.post("/api/projects/{project_id}/search", response_model=SearchOutput)
def search(project_id: UUID, body: SearchInput, principal: PrincipalDep) -> SearchOutput:
    """The k chunks of the project's code closest in meaning to the query."""
    logger.info(
        "search project",
        extra={"project_id": str(project_id), "query_chars": len(body.query), "k": body.k},
    )
    return search_project(
        project_id=project_id,
        owner_key_id=principal.key_id,
        query=body.query,
        k=body.k,
        store=get_project_store(),
    )


handler = make_lambda_handler(create_app([router], docs=False))
