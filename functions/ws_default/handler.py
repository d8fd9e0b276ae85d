"""WebSocket API $default: every client frame (sync requests and the route's messages)."""

import os
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from common.config import get_settings
from common.logs import logger
from common.ws.aws import run

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AIOrchestrator"))
ws_route = "$default"

get_settings()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric(name="WsMessages", unit=MetricUnit.Count, value=1)
    return run(ws_route, event)
