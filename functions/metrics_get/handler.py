"""GET /api/metrics: the latest monitoring sample and the persisted ones of a window."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from common.web import PrincipalDep, create_app, run_blocking
from common.web.lambda_entry import make_lambda_handler
from common.ws.monitoring import get_metrics

router = APIRouter(tags=["platform"])


class MetricsWindow(BaseModel):
    minutes: int
    samples: list[dict[str, Any]] = Field(
        description="Persisted samples (one per MONITOR_PERSIST_SECONDS), oldest first."
    )


class MetricsOutput(BaseModel):
    latest: dict[str, Any] | None = Field(
        description="The newest sample, as /ws/monitoring/stream sends it (None before the first)."
    )
    window: MetricsWindow


@router.get("/api/metrics", response_model=MetricsOutput)
async def read_metrics(
    principal: PrincipalDep,
    minutes: Annotated[int, Query(ge=1, le=10_080, description="The window, in minutes.")] = 60,
) -> dict[str, Any]:
    """The latest sample (host, requests per endpoint, jobs, cache, model) and a window."""
    return await run_blocking(get_metrics, minutes)


handler = make_lambda_handler(create_app([router], docs=False))
