"""GET /api/git/credentials: the calling key's Git credentials, masked."""

from fastapi import APIRouter

from common.git.credentials import GitCredentialPublic, get_credential_manager
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.get("/api/git/credentials", response_model=list[GitCredentialPublic])
def list_credentials(principal: PrincipalDep) -> list[GitCredentialPublic]:
    """List provider, host and a masked hint of each stored token."""
    return get_credential_manager().list(key_id=principal.key_id)


handler = make_lambda_handler(create_app([router], docs=False))
