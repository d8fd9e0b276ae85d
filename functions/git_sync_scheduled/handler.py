"""Scheduled (rate(5 minutes)): queue one git_sync job per project whose sync is due."""

from typing import Any

from common.config import get_settings
from common.logs import logger
from common.scheduler import run_once

get_settings()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    queued = run_once()
    return {"queued": sum(1 for q in queued if q["job_id"]), "claimed": len(queued)}
