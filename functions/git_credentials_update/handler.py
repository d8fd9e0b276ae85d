"""PUT /api/git/credentials/{credential_id}: replace (rotate) a stored Git token."""

from uuid import UUID

from fastapi import APIRouter

from common.git.credentials import GitCredentialPublic, GitCredentialUpdate, get_credential_manager
from common.logs import logger
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.put("/api/git/credentials/{credential_id}", response_model=GitCredentialPublic)
def update(
    credential_id: UUID, body: GitCredentialUpdate, principal: PrincipalDep
) -> GitCredentialPublic:
    """Rotate a token: the new one replaces the old, which is gone."""
    updated = get_credential_manager().update(
        key_id=principal.key_id, credential_id=credential_id, body=body
    )
    logger.info("git credential rotated", extra={"credential_id": str(credential_id)})
    return updated


handler = make_lambda_handler(create_app([router], docs=False))
