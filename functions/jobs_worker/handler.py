"""SQS → jobs: runs each queued job (and, on its schedule, the sweeper)."""

import os
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from common.behind import flush_behind
from common.config import get_settings
from common.jobs.sqs_worker import handle_sqs_message, sweep_jobs
from common.logs import logger

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AIOrchestrator"))
# A whole batch failing is reported like a partial one: the same batchItemFailures
# answer whatever the batch size, rather than an invocation error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

get_settings()  # a malformed setting fails the cold start, naming the variable


def record_handler(record: SQSRecord) -> None:
    outcome = handle_sqs_message(record.body)
    logger.debug(
        "job message done", extra={"job_id": str(outcome.job_id), "decision": outcome.decision}
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "Records" not in event:  # the scheduled sweep (an EventBridge event)
        requeued = sweep_jobs()
        metrics.add_metric(name="JobsRequeued", unit=MetricUnit.Count, value=requeued)
        return {"requeued": requeued}
    response: dict[str, Any] = dict(
        process_partial_response(event, record_handler, processor, context)
    )
    # Lambda freezes the process once we return: the jobs' history and cached answers,
    # queued behind them, are written now or wait for the next batch (or are lost).
    flush_behind(timeout_s=5.0)
    failures = len(response.get("batchItemFailures", []))
    metrics.add_metric(name="JobMessages", unit=MetricUnit.Count, value=len(event["Records"]))
    metrics.add_metric(name="JobMessageFailures", unit=MetricUnit.Count, value=failures)
    return response
