"""WebSocket API $disconnect: the connection leaves the table (best effort: the
table's TTL removes what a missed $disconnect leaves)."""

from typing import Any

from common.config import get_settings
from common.logs import logger
from common.ws.aws import run

ws_route = "$disconnect"

get_settings()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run(ws_route, event)
