"""WebSocket API $connect: the key, the route (``?path=``), the sid; then the table."""

import os
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from common.config import get_settings
from common.logs import logger
from common.ws.aws import run

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AIOrchestrator"))
ws_route = "$connect"  # tests/integration/test_template.py checks the template's route

get_settings()  # a malformed setting fails the cold start, naming the variable


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = run(ws_route, event)
    accepted = response.get("statusCode") == 200
    metrics.add_metric(
        name="WsConnects" if accepted else "WsRefused", unit=MetricUnit.Count, value=1
    )
    return response
