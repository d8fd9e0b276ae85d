"""DELETE /api/git/credentials/{credential_id}: forget a stored Git token."""

from uuid import UUID

from fastapi import APIRouter, Response

from common.git.credentials import get_credential_manager
from common.logs import logger
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.delete("/api/git/credentials/{credential_id}", status_code=204)
def delete(credential_id: UUID, principal: PrincipalDep) -> Response:
    """Delete a stored token."""
    get_credential_manager().delete(key_id=principal.key_id, credential_id=credential_id)
    logger.info("git credential deleted", extra={"credential_id": str(credential_id)})
    return Response(status_code=204)


handler = make_lambda_handler(create_app([router], docs=False))
