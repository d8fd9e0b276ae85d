"""POST /api/git/credentials: store a Git host token, encrypted; answers with its hint only."""

from fastapi import APIRouter

from common.git.credentials import GitCredentialCreate, GitCredentialPublic, get_credential_manager
from common.logs import logger
from common.web import PrincipalDep, create_app
from common.web.lambda_entry import make_lambda_handler

router = APIRouter(tags=["git"])


@router.post("/api/git/credentials", response_model=GitCredentialPublic, status_code=201)
def create(body: GitCredentialCreate, principal: PrincipalDep) -> GitCredentialPublic:
    """Store a token for a Git host (one per host); the token is never shown again."""
    created = get_credential_manager().create(key_id=principal.key_id, body=body)
    logger.info("git credential created", extra={"credential_id": str(created.id)})
    return created


handler = make_lambda_handler(create_app([router], docs=False))
