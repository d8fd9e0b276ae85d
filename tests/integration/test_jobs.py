"""Jobs on the run's PostgreSQL and Redis: submit, claim, progress, cancel, finish once,
the sweeper, the stream worker, and the SQS worker (moto) through its Lambda handler."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest

from common.auth import Principal
from common.behind import BehindWriter
from common.errors import InvalidInput, StoreUnavailable
from common.jobs import JobContext, cancel_job, get_job, submit_job
from common.jobs.kinds import KINDS
from common.jobs.models import FINISHED
from common.jobs.runner import RunSettings, process_job
from common.jobs.store import PostgresJobStore, get_job_store
from common.jobs.worker import StreamWorker, WorkerSettings
from tests.utils.aws import mocked_aws
from tests.utils.lambda_events import FakeLambdaContext, invoke, response_json

LEASE_S = 1.5
LIMITS = RunSettings(lease_s=LEASE_S, max_attempts=3)


# -- helpers ----------------------------------------------------------------


def call(function: str, method: str, path: str, key: str | None) -> tuple[int, Any]:
    response = invoke(function, method, path, key)
    return response["statusCode"], response_json(response)


def read(key: str | None, job_id: UUID | str) -> tuple[int, Any]:
    return call("jobs_get", "GET", f"/api/jobs/{job_id}", key)


def cancel(key: str | None, job_id: UUID | str) -> tuple[int, Any]:
    return call("jobs_cancel", "DELETE", f"/api/jobs/{job_id}", key)


def principal_of(key: str) -> Principal:
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return authenticate(key, store=get_postgres())


def wait_for(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def row(job_id: UUID) -> dict[str, Any]:
    found = get_job_store().get_row(job_id)
    assert found is not None
    return found


def expire_lease(job_id: UUID) -> None:
    """As if the lease's worker died a while ago (the job was sent before it was claimed)."""
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        conn.execute(
            "UPDATE jobs SET lease_until = now() - interval '1 second',"
            " enqueued_at = least(enqueued_at, now() - interval '2 seconds') WHERE id = %s",
            (job_id,),
        )


class FailingQueue:
    name = "broken"

    def send(self, job_id: UUID) -> None:
        raise StoreUnavailable("queue down")


class ListQueue:
    name = "list"

    def __init__(self) -> None:
        self.sent: list[UUID] = []

    def send(self, job_id: UUID) -> None:
        self.sent.append(job_id)


@pytest.fixture
def jobs(set_env: Callable[..., None]) -> Iterator[None]:
    """This test's own job stream (a key prefix inside the run's) and short time limits."""
    from common.jobs import queue

    prefix = os.environ.get("REDIS_KEY_PREFIX", "ao:") + f"j{uuid.uuid4().hex[:8]}:"
    set_env(REDIS_KEY_PREFIX=prefix, JOB_LEASE_SECONDS=str(LEASE_S), JOB_QUEUE_URL=None)
    queue.reset()
    yield
    queue.reset()


@pytest.fixture
def key(api_key: str, jobs: None) -> str:
    return api_key


@contextmanager
def stream_worker(concurrency: int = 2) -> Iterator[StreamWorker]:
    from common.jobs.events import get_event_sink
    from common.jobs.queue import RedisStreamQueue
    from common.stores.redis_store import get_redis

    queue = RedisStreamQueue(get_redis())
    settings = WorkerSettings(
        concurrency=concurrency, reclaim_idle_s=1.0, sweep_every_s=0, run=LIMITS
    )
    worker = StreamWorker(
        queue=queue, store=get_job_store(), events=get_event_sink(), settings=settings
    ).start()
    try:
        yield worker
    finally:
        worker.stop(grace_s=5)


def stream_pending() -> int:
    from common.jobs.queue import RedisStreamQueue
    from common.stores.redis_store import get_redis

    return RedisStreamQueue(get_redis()).pending()


def submit(key: str, **input: Any) -> UUID:
    return submit_job(kind="noop", input=input, principal=principal_of(key)).job_id


# -- the API ------------------------------------------------------------------


def test_a_job_is_queued_run_by_a_worker_and_read_back(key: str) -> None:
    from common.stores.redis_store import get_redis

    # Given a submitted job, and a client following its channel
    accepted = submit_job(kind="noop", input={"sleep_s": 0.3}, principal=principal_of(key))
    job_id = accepted.job_id
    assert accepted.status == "queued"
    assert accepted.status_url == f"/api/jobs/{job_id}"
    assert accepted.ws_url == f"/ws/jobs/{job_id}"
    redis = get_redis()
    pubsub = redis.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{redis.prefix}jobs:{job_id}")
    status, body = read(key, job_id)
    assert status == 200, body
    assert body["status"] == "queued" and body["attempts"] == 0
    assert body["progress"] == {"step": "", "percent": 0.0, "message": ""}
    # When a worker runs it
    with stream_worker():
        wait_for(lambda: read(key, job_id)[1]["status"] == "succeeded", what="success")
        wait_for(lambda: stream_pending() == 0, what="the entry acknowledged")
    # Then the job shows its result, full progress and times
    status, body = read(key, job_id)
    assert status == 200
    assert body["result"]["attempt"] == 1 and body["result"]["slept_s"] >= 0.3
    assert body["error"] is None and body["attempts"] == 1
    assert body["progress"]["percent"] == 100.0 and body["progress"]["step"] == "sleeping"
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]
    # And its events came numbered 1, 2, 3, ... from running to succeeded
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (events and events[-1].get("status") in FINISHED):
        message = pubsub.get_message(timeout=0.1)  # None too for the subscribe confirmation
        if message is not None:
            events.append(json.loads(message["data"]))
    pubsub.close()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["job_id"] == str(job_id) for e in events)
    first = {"seq": 1, "job_id": str(job_id), "type": "status", "status": "running", "attempt": 1}
    assert events[0] == first
    assert events[-1]["type"] == "status" and events[-1]["status"] == "succeeded"
    assert any(e["type"] == "progress" for e in events)


def test_another_keys_job_is_404_like_a_missing_one(key: str) -> None:
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    job_id = submit(key)
    other = create_key(store=get_postgres(), name="someone else").key
    answers = [read(other, job_id), cancel(other, job_id), read(key, uuid.uuid4())]
    for status, body in answers:
        assert status == 404, body
        assert body["error"]["code"] == "not_found"
    messages = {body["error"]["message"].replace(str(job_id), "ID") for _, body in answers[:2]}
    assert len(messages) == 1
    with pytest.raises(Exception) as caught:
        get_job(job_id, principal=principal_of(other))
    assert type(caught.value).__name__ == "NotFound"
    assert row(job_id)["status"] == "queued"  # the other key's cancel did nothing


def test_no_key_is_401_and_a_bad_id_422(key: str) -> None:
    for function, method in (("jobs_get", "GET"), ("jobs_cancel", "DELETE")):
        status, body = call(function, method, f"/api/jobs/{uuid.uuid4()}", None)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, body = call(function, method, "/api/jobs/not-a-uuid", key)
        assert status == 422 and body["error"]["code"] == "invalid_input"
        assert [f["path"] for f in body["error"]["fields"]] == ["path.job_id"]


def test_an_unknown_kind_is_422_and_nothing_is_stored(key: str) -> None:
    from common.stores.postgres import get_postgres
    from common.web.errors import error_response

    principal = principal_of(key)
    with pytest.raises(InvalidInput) as caught:
        submit_job(kind="mine-bitcoin", input={}, principal=principal)
    response = error_response(caught.value)
    assert response.status_code == 422
    body = json.loads(bytes(response.body))
    assert body["error"]["code"] == "invalid_input" and "noop" in body["error"]["kinds"]
    with pytest.raises(InvalidInput):
        submit_job(kind="noop", input={"x": object()}, principal=principal)
    with get_postgres().connection() as conn:
        found = conn.execute(
            "SELECT count(*) AS n FROM jobs WHERE key_id = %s", (principal.key_id,)
        ).fetchone()
    assert found is not None and found["n"] == 0


def test_a_job_on_a_missing_project_is_404(key: str) -> None:
    with pytest.raises(Exception) as caught:
        submit_job(kind="noop", input={}, principal=principal_of(key), project_id=uuid.uuid4())
    assert type(caught.value).__name__ == "NotFound"


# -- cancel -------------------------------------------------------------------


def test_a_queued_job_is_cancelled_at_once_and_never_runs(key: str) -> None:
    job_id = submit(key)
    status, body = cancel(key, job_id)
    assert status == 200, body
    assert body["status"] == "cancelled" and body["cancel_requested"] and body["finished_at"]
    # A delivery afterwards only acknowledges it
    outcome = process_job(
        job_id, worker="w", store=get_job_store(), events=_events(), limits=LIMITS
    )
    assert outcome.decision == "finished" and outcome.done_with_message
    assert row(job_id)["attempts"] == 0
    # And cancelling again changes nothing
    assert cancel(key, job_id)[1]["finished_at"] == body["finished_at"]


def test_a_running_job_is_asked_to_stop_and_ends_cancelled(key: str) -> None:
    job_id = submit(key, sleep_s=20)
    with stream_worker():
        wait_for(lambda: row(job_id)["status"] == "running", what="running")
        status, body = cancel(key, job_id)
        assert status == 200, body
        assert body["status"] == "running" and body["cancel_requested"]
        # The runner sees it at its next heartbeat (a third of the lease)
        started = time.monotonic()
        wait_for(lambda: row(job_id)["status"] == "cancelled", timeout_s=5, what="cancelled")
        assert time.monotonic() - started < LEASE_S + 1
    assert row(job_id)["attempts"] == 1


# -- claims: exactly once -------------------------------------------------------


def _events() -> Any:
    from common.jobs.events import get_event_sink

    return get_event_sink()


def test_of_many_simultaneous_claims_exactly_one_wins(key: str) -> None:
    job_id = submit(key)
    store = get_job_store()
    barrier = threading.Barrier(8)
    decisions: list[str | None] = []

    def claim(i: int) -> None:
        barrier.wait()
        decisions.append(store.claim(job_id, worker=f"w{i}", lease_s=30, max_attempts=3).decision)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(decisions, key=str) == ["busy"] * 7 + ["run"]
    assert row(job_id)["attempts"] == 1


def test_a_finished_job_never_runs_again(key: str) -> None:
    job_id = submit(key)
    store = get_job_store()
    first = process_job(job_id, worker="w1", store=store, events=_events(), limits=LIMITS)
    assert first.status == "succeeded"
    finished_at = row(job_id)["finished_at"]
    for worker in ("w1", "w2"):
        again = process_job(job_id, worker=worker, store=store, events=_events(), limits=LIMITS)
        assert again.decision == "finished"
    expire_lease(job_id)
    assert store.claim(job_id, worker="w3", lease_s=30, max_attempts=3).decision == "finished"
    assert row(job_id)["attempts"] == 1 and row(job_id)["finished_at"] == finished_at


def test_a_worker_presumed_dead_can_neither_beat_nor_finish(key: str) -> None:
    # Given a job claimed by w1, whose lease then expired, claimed again by w2
    job_id = submit(key)
    store = get_job_store()
    assert store.claim(job_id, worker="w1", lease_s=30, max_attempts=3).decision == "run"
    assert store.claim(job_id, worker="w2", lease_s=30, max_attempts=3).decision == "busy"
    expire_lease(job_id)
    assert store.claim(job_id, worker="w2", lease_s=30, max_attempts=3).decision == "run"
    # When w1 comes back to life
    lost_beat = store.heartbeat(job_id, worker="w1", attempt=1, lease_s=30, progress=None)
    lost_finish = finish(store, job_id, "w1", 1)
    # Then it is told the job is not its own any more, and w2's outcome is the one kept
    assert lost_beat is None and lost_finish is None
    assert store.heartbeat(job_id, worker="w2", attempt=2, lease_s=30, progress=None) is False
    assert finish(store, job_id, "w2", 2) == "succeeded"
    final = row(job_id)
    assert final["result"] == {"by": "w2"} and final["attempts"] == 2


def finish(store: PostgresJobStore, job_id: UUID, worker: str, attempt: int) -> str | None:
    return store.finish(
        job_id,
        worker=worker,
        attempt=attempt,
        status="succeeded",
        result={"by": worker},
        error=None,
        progress=None,
    )


def test_after_three_lost_workers_the_job_fails_for_good(key: str) -> None:
    job_id = submit(key)
    store = get_job_store()
    for attempt in range(1, 4):
        claim = store.claim(job_id, worker=f"w{attempt}", lease_s=30, max_attempts=3)
        assert claim.decision == "run"
        expire_lease(job_id)
    claim = store.claim(job_id, worker="w4", lease_s=30, max_attempts=3)
    assert claim.decision == "give_up"
    final = row(job_id)
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["error"]["code"] == "job_abandoned" and "3 times" in final["error"]["message"]


# -- enqueue failures and the sweeper -------------------------------------------


def test_a_job_whose_send_failed_is_stored_and_sent_by_the_sweeper(key: str) -> None:
    # Given a submit while the queue is down
    accepted = submit_job(kind="noop", input={}, principal=principal_of(key), queue=FailingQueue())
    job_id = accepted.job_id
    # Then the job is stored all the same, marked as never sent
    assert row(job_id)["status"] == "queued" and row(job_id)["enqueued_at"] is None
    # When the sweeper runs
    store = get_job_store()
    due = store.due_for_enqueue(requeue_s=300, limit=10_000)
    # Then it is due once, and stamped so the next sweep does not send it again
    assert job_id in due
    assert job_id not in store.due_for_enqueue(requeue_s=300, limit=10_000)
    # And a worker's sweep puts it on the stream, where it runs
    with stream_worker() as worker:
        _set_enqueued_at(job_id, None)
        worker.sweep()
        wait_for(lambda: row(job_id)["status"] == "succeeded", what="the swept job to run")


def test_the_sweeper_resends_a_job_whose_worker_died_once_per_lease(key: str) -> None:
    job_id = submit(key)
    store = get_job_store()
    assert store.claim(job_id, worker="w1", lease_s=30, max_attempts=3).decision == "run"
    assert job_id not in store.due_for_enqueue(requeue_s=300, limit=10_000)  # alive
    expire_lease(job_id)
    assert job_id in store.due_for_enqueue(requeue_s=300, limit=10_000)
    assert job_id not in store.due_for_enqueue(requeue_s=300, limit=10_000)
    outcome = process_job(job_id, worker="w2", store=store, events=_events(), limits=LIMITS)
    assert outcome.status == "succeeded" and row(job_id)["attempts"] == 2


def _set_enqueued_at(job_id: UUID, value: Any) -> None:
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        conn.execute("UPDATE jobs SET enqueued_at = %s WHERE id = %s", (value, job_id))


# -- the stream worker ----------------------------------------------------------


def test_the_stream_worker_runs_many_jobs_once_each(key: str) -> None:
    ids = [submit(key) for _ in range(20)]
    with stream_worker(concurrency=4):
        wait_for(lambda: all(row(i)["status"] == "succeeded" for i in ids), what="twenty jobs done")
        wait_for(lambda: stream_pending() == 0, what="every entry acknowledged")
    assert {row(i)["attempts"] for i in ids} == {1}


def test_a_failing_job_is_failed_with_its_error_and_not_retried(key: str) -> None:
    job_id = submit(key, fail=True)
    with stream_worker():
        wait_for(lambda: row(job_id)["status"] == "failed", what="failed")
        wait_for(lambda: stream_pending() == 0, what="acknowledged")
    status, body = read(key, job_id)
    assert status == 200
    assert body["error"]["code"] == "invalid_input"
    assert body["error"]["message"] == "this noop job was asked to fail"
    assert body["attempts"] == 1 and body["result"] is None


def test_an_entry_left_by_a_dead_worker_is_reclaimed_and_run_once(key: str) -> None:
    from common.jobs.queue import RedisStreamQueue
    from common.stores.redis_store import get_redis

    # Given a job whose entry a worker read and whose claim it took, then died
    job_id = submit(key, sleep_s=0.2)
    queue = RedisStreamQueue(get_redis())
    [entry] = queue.read("dead-worker", count=1, block_ms=100)
    assert entry.job_id == job_id
    store = get_job_store()
    assert store.claim(job_id, worker="dead-worker", lease_s=LEASE_S, max_attempts=3).decision
    # When a live worker starts
    with stream_worker():
        # Then, once the entry has idled and the lease expired, it runs the job
        wait_for(lambda: row(job_id)["status"] == "succeeded", what="reclaimed and run")
        wait_for(lambda: stream_pending() == 0, what="acknowledged")
    final = row(job_id)
    assert final["attempts"] == 2 and final["result"]["attempt"] == 2


# -- the SQS worker (moto) ------------------------------------------------------


@pytest.fixture
def sqs(jobs: None, set_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    from common.jobs import queue

    with mocked_aws(monkeypatch):
        client = boto3.client("sqs", region_name="us-east-1")
        dlq = client.create_queue(QueueName="jobs-dead")["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        url = client.create_queue(
            QueueName="jobs",
            Attributes={
                "VisibilityTimeout": "960",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}),
            },
        )["QueueUrl"]
        set_env(JOB_QUEUE_URL=url)
        queue.reset()
        yield client
        queue.reset()


def sqs_event(client: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = "arn:aws:sqs:us-east-1:123456789012:jobs"
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795849200000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1795849200001",
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def receive_all(client: Any, url: str, expected: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        messages += answer.get("Messages", [])
        if len(messages) >= expected:
            break
    return messages


def test_the_sqs_worker_reports_only_the_failing_record(key: str, sqs: Any) -> None:
    from common.config import get_settings
    from functions.jobs_worker.handler import handler

    url = get_settings().JOB_QUEUE_URL
    # Given two jobs submitted to SQS, and a message that is not a job
    good = [submit(key), submit(key, fail=True)]
    sqs.send_message(QueueUrl=url, MessageBody="not a job")
    messages = receive_all(sqs, url, 3)
    assert len(messages) == 3
    bad_id = next(m["MessageId"] for m in messages if m["Body"] == "not a job")
    assert {json.loads(m["Body"])["job_id"] for m in messages if m["MessageId"] != bad_id} == {
        str(i) for i in good
    }
    # When the worker function gets them as one batch
    answer = handler(sqs_event(sqs, messages), FakeLambdaContext())
    # Then only the malformed record comes back, and each job has its outcome
    assert answer == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert row(good[0])["status"] == "succeeded"
    assert row(good[1])["status"] == "failed"  # a job's failure is an outcome, not a retry
    # And the same batch delivered again runs nothing twice
    again = handler(sqs_event(sqs, messages), FakeLambdaContext())
    assert again == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert [row(i)["attempts"] for i in good] == [1, 1]


class LingeringWriter(BehindWriter[str]):
    """Writes behind only after a minute of quiet, unless flushed."""

    def __init__(self) -> None:
        super().__init__("lingering", linger_s=60, batch_size=100, queue_size=100)
        self.written: list[str] = []

    def _write(self, batch: list[str]) -> None:
        self.written += batch


def test_the_sqs_worker_writes_what_was_queued_behind_before_it_returns(key: str, sqs: Any) -> None:
    from common.config import get_settings
    from functions.jobs_worker.handler import handler

    # History and cached answers are written behind; Lambda freezes the instance
    # once the handler returns.
    writer = LingeringWriter()
    writer.put("an attempt")
    submit(key)
    messages = receive_all(sqs, get_settings().JOB_QUEUE_URL, 1)

    handler(sqs_event(sqs, messages), FakeLambdaContext())

    assert writer.written == ["an attempt"]


def test_the_scheduled_sweep_sends_lost_jobs_to_sqs(key: str, sqs: Any) -> None:
    from common.config import get_settings
    from functions.jobs_worker.handler import handler

    url = get_settings().JOB_QUEUE_URL
    job_id = submit_job(
        kind="noop", input={}, principal=principal_of(key), queue=FailingQueue()
    ).job_id
    scheduled = {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event"}
    answer = handler(scheduled, FakeLambdaContext())
    assert answer["requeued"] >= 1
    bodies = [json.loads(m["Body"])["job_id"] for m in receive_all(sqs, url, answer["requeued"])]
    assert str(job_id) in bodies


def test_submitting_with_sqs_sends_one_message(key: str, sqs: Any) -> None:
    from common.config import get_settings

    job_id = submit(key)
    [message] = receive_all(sqs, get_settings().JOB_QUEUE_URL, 1)
    assert json.loads(message["Body"]) == {"job_id": str(job_id)}


def test_a_runner_gets_its_context(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def spy(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        seen.update(input=input, job_id=ctx.job_id, key_id=ctx.key_id, attempt=ctx.attempt)
        ctx.progress("one", 50, "half way")
        ctx.on_token("tok")
        return {"ok": True}

    monkeypatch.setitem(KINDS, "spy", f"{__name__}:_spy")
    monkeypatch.setattr(f"{__name__}._spy", spy, raising=False)
    principal = principal_of(key)
    job_id = submit_job(kind="spy", input={"a": 1}, principal=principal).job_id
    store: PostgresJobStore = get_job_store()
    outcome = process_job(job_id, worker="w", store=store, events=_events(), limits=LIMITS)
    assert outcome.status == "succeeded"
    assert seen == {"input": {"a": 1}, "job_id": job_id, "key_id": principal.key_id, "attempt": 1}
    view = get_job(job_id, principal=principal)
    # The runner's last step and message are kept; a job that succeeded is at 100 %
    assert view.progress.model_dump() == {"step": "one", "percent": 100.0, "message": "half waytok"}
    assert view.result == {"ok": True}
    assert cancel_job(job_id, principal=principal).status == "succeeded"  # finished: unchanged


def _spy(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:  # replaced per test
    raise AssertionError("not patched")


def test_job_events_are_kept_for_replay_where_no_server_listens(stores: None) -> None:
    # Given a job's events published by a worker (no local server copies them)
    from common.jobs.events import get_event_sink
    from common.ws.events import get_event_log

    job_id = uuid.uuid4()
    sink = get_event_sink()
    sink.publish(job_id, {"type": "status", "status": "running", "attempt": 1})
    sink.publish(job_id, {"type": "progress", "step": "a", "percent": 50.0, "message": ""})

    # When a client asks for what it missed since the first
    log = get_event_log()
    replay = log.since("jobs", str(job_id), 1)

    # Then the stream has them under the workers' numbers, and a copy is refused
    assert [e.seq for e in log.since("jobs", str(job_id), 0)] == [1, 2]
    assert [e.data()["type"] for e in replay] == ["progress"]
    assert log.record("jobs", str(job_id), replay[0]) is False
