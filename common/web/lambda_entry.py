"""The Lambda door: Mangum over a function's app, under Powertools' decorators."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from fastapi import FastAPI
from mangum import Mangum

from common.behind import flush_behind
from common.config import get_settings
from common.logs import logger

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AIOrchestrator"))

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_lambda_handler(app: FastAPI) -> LambdaHandler:
    """``handler(event, context)`` for API Gateway HTTP API (payload 2.0) events."""
    # Fail the cold start, with one line naming the variable, on a malformed setting.
    get_settings()
    asgi = Mangum(app, lifespan="off")

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        _ensure_event_loop()
        response: dict[str, Any] = asgi(event, context)
        # Lambda freezes the process once we return: write the history and cached
        # answers queued by this invocation now, or they wait for the next one (or are
        # lost with the instance).
        flush_behind(timeout_s=2.0)
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        if int(response.get("statusCode", 500)) >= 500:
            metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        return response

    return cast(LambdaHandler, handler)


def _ensure_event_loop() -> None:
    # Mangum runs each request on asyncio.get_event_loop(); an asyncio.run() earlier in
    # this thread (a WebSocket door, a test) ends by unsetting the loop, after which
    # get_event_loop() raises instead of making one.
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
