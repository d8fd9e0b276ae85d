"""Latency percentiles from merged histograms, the sample's per-endpoint figures, and
how a sample is stored as metrics rows."""

from __future__ import annotations

import random

import pytest

from common.ws import metrics
from common.ws.metrics import (
    WindowTotals,
    aggregate,
    bucket_of,
    bucket_upper_ms,
    percentile,
)
from common.ws.monitoring import flatten, unflatten


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * q // 100) - 1)]  # nearest rank


def histogram(values: list[float]) -> dict[int, int]:
    hist: dict[int, int] = {}
    for v in values:
        hist[bucket_of(v)] = hist.get(bucket_of(v), 0) + 1
    return hist


def test_a_latency_falls_in_the_bucket_whose_bound_covers_it() -> None:
    for ms in (0.05, 0.1, 0.11, 1.0, 3.3, 250.0, 29_000.0):
        bucket = bucket_of(ms)
        assert bucket_upper_ms(bucket) >= ms * (1 - 1e-9)
        assert bucket == 0 or bucket_upper_ms(bucket - 1) < ms


@pytest.mark.parametrize("q", [50, 90, 99])
def test_percentiles_are_within_5_percent_of_the_exact_ones(q: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1.2) for _ in range(5_000)]
    got = percentile(histogram(values), q)
    assert got is not None
    assert exact(values, q) <= got <= exact(values, q) * 1.05 + 1e-9


def test_histograms_of_several_processes_merge_by_adding_counts() -> None:
    # Given two processes' requests to the same endpoint, flushed apart
    rng = random.Random(1)
    a = [("/api/explain", 200, rng.uniform(1, 20), 0, 0) for _ in range(900)]
    b = [("/api/explain", 200, rng.uniform(100, 200), 0, 0) for _ in range(100)]
    totals = WindowTotals()
    totals.add(aggregate(a))
    totals.add(aggregate(b))
    # When the sampler reads the window
    figures = totals.figures(60)["requests"]["endpoints"]["/api/explain"]
    # Then the percentiles are those of all 1000 requests
    everything = [r[2] for r in a + b]
    assert figures["count"] == 1000
    assert exact(everything, 50) <= figures["p50_ms"] <= exact(everything, 50) * 1.05
    assert exact(everything, 99) <= figures["p99_ms"] <= exact(everything, 99) * 1.05


def test_errors_cache_and_model_figures() -> None:
    requests = [
        ("/api/fix", 200, 5.0, 1, 0),
        ("/api/fix", 502, 7.0, 0, 2),
        ("unmatched", 404, 0.2, 0, 0),
    ]
    calls = [(100, 2_000.0, False), (50, 500.0, False), (80, 1.0, True)]
    totals = WindowTotals()
    totals.add(aggregate(requests, calls))
    figures = totals.figures(60)
    assert figures["requests"]["count"] == 3
    assert figures["requests"]["endpoints"]["/api/fix"]["errors"] == 1
    assert figures["cache"] == {"hits": 1, "misses": 2, "hit_ratio": 0.3333}
    # Cached answers are calls, not generation: 150 tokens in 2.5 s.
    assert figures["model"] == {"calls": 3, "completion_tokens": 150, "tokens_per_s": 60.0}
    empty = WindowTotals().figures(60)
    assert empty["requests"]["p50_ms"] is None and empty["cache"]["hit_ratio"] is None


def test_recording_is_an_append_that_drops_the_oldest_when_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collections import deque

    monkeypatch.setattr(metrics, "_flusher", object())  # no thread in a unit test
    monkeypatch.setattr(metrics, "_requests", deque(maxlen=3))
    for i in range(5):
        metrics.record_request(f"/e{i}", 200, 1.0, 0, 0)
    assert [r[0] for r in metrics._requests] == ["/e2", "/e3", "/e4"]


def test_a_sample_is_stored_as_rows_and_read_back() -> None:
    sample = {
        "type": "sample",
        "ts": 1.0,
        "host": {"source": "psutil", "cpu_percent": 12.5, "memory": {"percent": 40.0}},
        "requests": {
            "count": 3,
            "p50_ms": None,
            "endpoints": {"/api/x": {"count": 3, "p99_ms": 9.5}},
        },
        "jobs": {"queued": 2, "oldest_queued_s": None},
        "cache": {"hit_ratio": 0.5},
        "model": {"tokens_per_s": None},
    }
    rows = list(flatten(sample))
    assert ("host.cpu_percent", 12.5, {}) in rows
    assert ("requests.endpoint.p99_ms", 9.5, {"endpoint": "/api/x"}) in rows
    assert all(isinstance(value, float) for _, value, _ in rows)  # no strings, no None
    assert unflatten(rows) == {
        "host": {"cpu_percent": 12.5, "memory": {"percent": 40.0}},
        "requests": {"count": 3.0, "endpoints": {"/api/x": {"count": 3.0, "p99_ms": 9.5}}},
        "jobs": {"queued": 2.0},
        "cache": {"hit_ratio": 0.5},
    }


def test_every_model_answer_feeds_the_monitoring_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    from common.models.base import Message
    from common.models.cache import CachedModelClient
    from common.ws import metrics
    from tests.fakes.scripted_model import ScriptedModel

    recorded: list[tuple[int, float, bool]] = []
    monkeypatch.setattr(
        metrics, "record_model_call", lambda t, ms, cached=False: recorded.append((t, ms, cached))
    )
    client = CachedModelClient(ScriptedModel("an answer"), redis=lambda: None, ttl_s=0)  # type: ignore[arg-type,return-value]

    client.chat([Message(role="user", content="hi")])

    assert recorded == [(len("an answer"), 1, False)]
