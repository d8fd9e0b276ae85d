"""Scheduled (rate(1 minute)): one monitoring sample, posted to every monitoring
connection and persisted. Lambda cannot sample every second between invocations:
on AWS the stream has one sample a minute (the local server: MONITOR_INTERVAL_MS)."""

from typing import Any

from common.config import get_settings
from common.logs import logger
from common.ws.aws import run_monitor_tick

get_settings()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_monitor_tick()
