"""The job lifecycle's pure decisions, and the pieces that take no I/O to check."""

from __future__ import annotations

import json
import uuid

import pytest

from common.errors import InvalidInput
from common.jobs.kinds import KINDS, check_kind, load_runner
from common.jobs.models import JobAccepted, status_url, view_from_row, ws_url
from common.jobs.queue import job_message, parse_job_message
from common.jobs.rules import ProgressThrottle, decide_claim, final_status, tail


def decide(status: str, attempts: int = 0, cancel: bool = False, expired: bool = False) -> str:
    return decide_claim(
        status=status,
        attempts=attempts,
        cancel_requested=cancel,
        lease_expired=expired,
        max_attempts=3,
    )


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_finished_job_never_runs_again(status: str) -> None:
    assert decide(status) == "finished"
    assert decide(status, attempts=1, cancel=True, expired=True) == "finished"


def test_a_queued_job_runs() -> None:
    assert decide("queued") == "run"
    assert decide("queued", attempts=2) == "run"


def test_a_running_job_under_a_live_lease_is_busy() -> None:
    assert decide("running", attempts=1) == "busy"
    assert decide("running", attempts=1, cancel=True) == "busy"  # its worker will see the cancel


def test_a_running_job_whose_lease_expired_is_taken_over() -> None:
    assert decide("running", attempts=1, expired=True) == "run"
    assert decide("running", attempts=2, expired=True) == "run"


def test_after_max_attempts_the_job_fails_for_good() -> None:
    assert decide("running", attempts=3, expired=True) == "give_up"
    assert decide("queued", attempts=3) == "give_up"


def test_a_cancel_nobody_is_serving_ends_the_job_without_running_it() -> None:
    assert decide("queued", cancel=True) == "cancel"
    assert decide("running", attempts=1, cancel=True, expired=True) == "cancel"
    assert decide("running", attempts=3, cancel=True, expired=True) == "cancel"


def test_a_cancel_asked_for_while_running_wins() -> None:
    assert final_status("succeeded", cancel_requested=True) == "cancelled"
    assert final_status("failed", cancel_requested=True) == "cancelled"
    assert final_status("succeeded", cancel_requested=False) == "succeeded"


def test_progress_writes_a_new_step_at_once_and_otherwise_once_a_second() -> None:
    throttle = ProgressThrottle(1.0)
    assert throttle.due("plan", 0.0)
    throttle.wrote("plan", 0.0)
    assert not throttle.due("plan", 0.5)
    assert throttle.due("write", 0.5)  # a new step
    throttle.wrote("write", 0.5)
    assert not throttle.due("write", 1.4)
    assert throttle.due("write", 1.5)


def test_tail_keeps_the_end_and_prefers_a_line_start() -> None:
    assert tail("short", 10) == "short"
    text = "a" * 100 + "\n" + "b" * 50
    assert tail(text, 60) == "b" * 50  # the partial line of a's is dropped
    no_lines = "x" * 5000
    assert tail(no_lines, 2048) == "x" * 2048
    late_newline = "y" * 3000 + "\n" + "z" * 10
    assert tail(late_newline, 2048) == late_newline[-2048:]  # keeping most of it matters more


def test_a_queue_message_carries_only_the_job_id() -> None:
    job_id = uuid.uuid4()
    assert json.loads(job_message(job_id)) == {"job_id": str(job_id)}
    assert parse_job_message(job_message(job_id)) == job_id
    assert parse_job_message(job_message(job_id).encode()) == job_id


@pytest.mark.parametrize(
    "body", [None, "", "not json", "[]", "{}", '{"job_id": "nope"}', '{"job_id": 5}', "null"]
)
def test_anything_else_is_not_a_job_message(body: str | None) -> None:
    assert parse_job_message(body) is None


def test_unknown_kinds_are_refused_and_known_ones_load_lazily() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_kind("mine-bitcoin")
    assert caught.value.status == 422
    assert caught.value.details["kinds"] == sorted(KINDS)
    check_kind("noop")
    from common.jobs.builtin import noop

    assert load_runner("noop") is noop
    assert set(KINDS) >= {"noop", "generate", "migrate", "fix", "test", "optimize", "analyze"}
    assert all(":" in target for target in KINDS.values())


def test_urls_and_the_view_of_a_row() -> None:
    job_id = uuid.uuid4()
    accepted = JobAccepted(job_id=job_id, status_url=status_url(job_id), ws_url=ws_url(job_id))
    assert accepted.model_dump(mode="json") == {
        "job_id": str(job_id),
        "status": "queued",
        "status_url": f"/api/jobs/{job_id}",
        "ws_url": f"/ws/jobs/{job_id}",
    }
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    view = view_from_row(
        {
            "id": job_id,
            "kind": "noop",
            "status": "running",
            "project_id": None,
            "progress": 42.5,
            "progress_step": "plan",
            "progress_message": "thinking",
            "result": None,
            "error": None,
            "attempts": 1,
            "cancel_requested_at": now,
            "created_at": now,
            "started_at": now,
            "finished_at": None,
        }
    )
    assert view.progress.model_dump() == {"step": "plan", "percent": 42.5, "message": "thinking"}
    assert view.cancel_requested and view.attempts == 1
