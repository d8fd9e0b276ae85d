"""process_job and JobContext on an in-memory store: outcomes, errors, progress, cancel."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest

from common.errors import ModelTimeout
from common.jobs import JobCancelled, JobContext
from common.jobs.kinds import KINDS
from common.jobs.rules import decide_claim
from common.jobs.runner import RunSettings, process_job
from common.jobs.store import Claim, ProgressSnapshot

LIMITS = RunSettings(lease_s=30.0, max_attempts=3)


class FakeStore:
    """The JobStore protocol over a dict: enough of the claim token rules to test the runner."""

    def __init__(self) -> None:
        self.rows: dict[UUID, dict[str, Any]] = {}
        self.beats: list[ProgressSnapshot | None] = []
        self.lease_expired = False
        self.cancel = False
        self.owner_override: str | None = None

    def add(self, kind: str = "noop", input: dict[str, Any] | None = None) -> UUID:
        job_id = uuid.uuid4()
        self.rows[job_id] = {
            "id": job_id,
            "kind": kind,
            "input": input or {},
            "status": "queued",
            "attempts": 0,
            "worker": None,
            "key_id": uuid.uuid4(),
            "project_id": None,
        }
        return job_id

    def claim(self, job_id: UUID, *, worker: str, lease_s: float, max_attempts: int) -> Claim:
        row = self.rows.get(job_id)
        if row is None:
            return Claim(None, None)
        decision = decide_claim(
            status=row["status"],
            attempts=row["attempts"],
            cancel_requested=self.cancel,
            lease_expired=self.lease_expired,
            max_attempts=max_attempts,
        )
        if decision == "run":
            row.update(status="running", worker=worker, attempts=row["attempts"] + 1)
        elif decision == "cancel":
            row["status"] = "cancelled"
        elif decision == "give_up":
            row["status"] = "failed"
        return Claim(decision, dict(row))

    def _owned(self, job_id: UUID, worker: str, attempt: int) -> bool:
        row = self.rows[job_id]
        owner = self.owner_override or row["worker"]
        return row["status"] == "running" and owner == worker and row["attempts"] == attempt

    def heartbeat(
        self,
        job_id: UUID,
        *,
        worker: str,
        attempt: int,
        lease_s: float,
        progress: ProgressSnapshot | None,
    ) -> bool | None:
        self.beats.append(progress)
        if not self._owned(job_id, worker, attempt):
            return None
        return self.cancel

    def finish(
        self,
        job_id: UUID,
        *,
        worker: str,
        attempt: int,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        progress: ProgressSnapshot | None,
    ) -> str | None:
        if not self._owned(job_id, worker, attempt):
            return None
        final = "cancelled" if self.cancel else status
        self.rows[job_id].update(status=final, result=result, error=error, progress=progress)
        return final


class Events:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish(self, job_id: UUID, event: dict[str, Any]) -> None:
        self.sent.append(event)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def events() -> Events:
    return Events()


def run(store: FakeStore, events: Events, job_id: UUID, worker: str = "w1") -> Any:
    return process_job(job_id, worker=worker, store=store, events=events, limits=LIMITS)


def boom(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    raise RuntimeError("password=hunter2 leaked into an exception")


def model_slow(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    raise ModelTimeout("the model took longer than 25 s", details={"timeout_s": 25})


def not_json(input: dict[str, Any], ctx: JobContext) -> Any:
    return {"handle": object()}


def plain_value(input: dict[str, Any], ctx: JobContext) -> Any:
    return [1, 2, 3]


def stops_on_cancel(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    ctx.progress("working", 10)
    raise JobCancelled("stop")


@pytest.fixture(autouse=True)
def _test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("boom", "model_slow", "not_json", "plain_value", "stops_on_cancel"):
        monkeypatch.setitem(KINDS, name, f"{__name__}:{name}")


def test_a_job_runs_once_and_then_is_finished(store: FakeStore, events: Events) -> None:
    # Given a queued noop job
    job_id = store.add()
    # When it is delivered twice
    first = run(store, events, job_id)
    again = run(store, events, job_id, worker="w2")
    # Then it ran once, and the second delivery was only acknowledged
    assert (first.decision, first.status) == ("run", "succeeded")
    assert (again.decision, again.done_with_message) == ("finished", True)
    row = store.rows[job_id]
    assert row["attempts"] == 1 and row["result"]["attempt"] == 1
    assert row["progress"] == ProgressSnapshot("done", 100.0, "")
    statuses = [e["status"] for e in events.sent if e["type"] == "status"]
    assert statuses == ["running", "succeeded"]


def test_an_app_error_is_the_jobs_error(store: FakeStore, events: Events) -> None:
    job_id = store.add("model_slow")
    assert run(store, events, job_id).status == "failed"
    assert store.rows[job_id]["error"] == {
        "code": "model_timeout",
        "message": "the model took longer than 25 s",
        "timeout_s": 25,
    }


def test_a_noop_asked_to_fail_fails_with_its_error(store: FakeStore, events: Events) -> None:
    job_id = store.add(input={"fail": True})
    assert run(store, events, job_id).status == "failed"
    assert store.rows[job_id]["error"]["code"] == "invalid_input"


def test_any_other_exception_is_a_generic_error_without_its_text(
    store: FakeStore, events: Events, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = store.add("boom")
    assert run(store, events, job_id).status == "failed"
    error = store.rows[job_id]["error"]
    assert error["code"] == "internal_error"
    assert str(job_id) in error["message"] and "hunter2" not in str(error)
    logged = capsys.readouterr().out
    assert "job failed" in logged and "RuntimeError" in logged  # the traceback, for operators
    assert "hunter2" not in logged  # scrubbed by the log filter


def test_a_result_that_is_not_json_fails_the_job(store: FakeStore, events: Events) -> None:
    job_id = store.add("not_json")
    assert run(store, events, job_id).status == "failed"
    assert store.rows[job_id]["error"]["code"] == "internal_error"


def test_a_result_that_is_not_an_object_is_wrapped(store: FakeStore, events: Events) -> None:
    job_id = store.add("plain_value")
    assert run(store, events, job_id).status == "succeeded"
    assert store.rows[job_id]["result"] == {"value": [1, 2, 3]}


def test_a_runner_that_stops_on_cancel_ends_cancelled(store: FakeStore, events: Events) -> None:
    job_id = store.add("stops_on_cancel")
    assert run(store, events, job_id).status == "cancelled"


def test_a_job_whose_kind_is_gone_fails_with_a_typed_error(
    store: FakeStore, events: Events
) -> None:
    job_id = store.add("retired-kind")
    assert run(store, events, job_id).status == "failed"
    assert store.rows[job_id]["error"]["code"] == "invalid_input"


def test_a_job_taken_over_meanwhile_is_not_recorded_and_its_message_kept(
    store: FakeStore, events: Events
) -> None:
    job_id = store.add()
    store.owner_override = "someone-else"  # our lease expired and another worker claimed it
    outcome = run(store, events, job_id)
    assert outcome.decision == "busy" and not outcome.done_with_message
    assert "result" not in store.rows[job_id]


def test_a_job_busy_elsewhere_keeps_its_message(store: FakeStore, events: Events) -> None:
    job_id = store.add()
    run(store, events, job_id)
    store.rows[job_id]["status"] = "running"
    outcome = run(store, events, job_id, worker="w2")
    assert outcome.decision == "busy" and not outcome.done_with_message


def test_a_missing_job_drops_its_message(store: FakeStore, events: Events) -> None:
    outcome = run(store, events, uuid.uuid4())
    assert outcome.decision is None and outcome.done_with_message


def context(store: FakeStore, events: Events, clock: list[float]) -> JobContext:
    job_id = store.add()
    store.claim(job_id, worker="w1", lease_s=30, max_attempts=3)
    return JobContext(
        job_id=job_id,
        key_id=None,
        project_id=None,
        attempt=1,
        worker="w1",
        lease_s=30,
        store=store,
        events=events,
        clock=lambda: clock[0],
    )


def test_progress_is_published_every_time_and_written_when_due(
    store: FakeStore, events: Events
) -> None:
    clock = [0.0]
    ctx = context(store, events, clock)
    ctx.progress("plan", 0)
    ctx.progress("plan", 10, "a")
    ctx.progress("plan", 20, "b")
    clock[0] = 1.0
    ctx.progress("plan", 30)
    ctx.progress("write", 150)  # clamped
    assert [e["percent"] for e in events.sent] == [0, 10, 20, 30, 100]
    written = [b for b in store.beats if b is not None]
    assert [(b.step, b.percent) for b in written] == [("plan", 0), ("plan", 30), ("write", 100)]
    assert written[-1].message == "b"  # the last message stays until a new one
    # And the heartbeat writes only what is not written yet
    ctx.beat()
    assert store.beats[-1] is None


def test_tokens_are_published_and_the_last_2kb_kept(store: FakeStore, events: Events) -> None:
    ctx = context(store, events, [0.0])
    for i in range(300):
        ctx.on_token(f"token{i:04d} ")
    ctx.on_token("")
    assert len([e for e in events.sent if e["type"] == "token"]) == 300
    message = ctx.snapshot().message
    assert len(message) <= 2048 and message.endswith("token0299 ")
    ctx.beat()
    assert store.beats[-1] is not None and store.beats[-1].message == message


def test_a_cancel_is_seen_at_the_next_beat(store: FakeStore, events: Events) -> None:
    ctx = context(store, events, [0.0])
    assert not ctx.cancelled()
    ctx.raise_if_cancelled()
    store.cancel = True
    ctx.beat()
    assert ctx.cancelled() and not ctx.lost
    with pytest.raises(JobCancelled):
        ctx.raise_if_cancelled()
    assert events.sent[-1] == {"type": "cancel_requested"}


def test_a_lost_claim_reads_as_cancelled(store: FakeStore, events: Events) -> None:
    ctx = context(store, events, [0.0])
    store.owner_override = "someone-else"
    ctx.beat()
    assert ctx.cancelled() and ctx.lost
