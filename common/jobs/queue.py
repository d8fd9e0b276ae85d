"""Where job ids wait for a worker: SQS on AWS, a Redis stream on one machine.

``JOB_QUEUE_URL`` set: :class:`SqsJobQueue` (boto3, imported on first send). The
worker is the ``functions/jobs_worker`` Lambda, fed by the event source mapping;
a message received 3 times without success goes to the dead-letter queue, and the
queue's visibility timeout is longer than the worker's timeout, so a message is
never handed out twice while a worker may still run it (template.yaml).

Unset: :class:`RedisStreamQueue`, a stream ``<prefix>jobs:stream`` with one consumer
group ``workers``. Each worker is a consumer: ``XREADGROUP`` hands an entry to one of
them, and it stays in that consumer's pending list until ``XACK``. A worker that dies
mid-job leaves it pending; while a job runs its worker re-claims the entry to itself
on every heartbeat (which resets its idle time), so only an entry whose worker went
quiet for ``JOB_RECLAIM_IDLE_SECONDS`` is taken by another worker's ``XAUTOCLAIM``.
Acknowledged entries are deleted too (``XDEL``): the stream holds only open work.

Either way a message carries only the job id; PostgreSQL decides what to do with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.errors import StoreUnavailable
from common.lazy import Lazy
from common.logs import get_logger

if TYPE_CHECKING:
    from common.stores.redis_store import RedisStore

log = get_logger("jobs.queue")

GROUP = "workers"


def job_message(job_id: UUID) -> str:
    return json.dumps({"job_id": str(job_id)})


def parse_job_message(body: str | bytes | None) -> UUID | None:
    """The job id in a queue message, or None when it is not one of ours."""
    if body is None:
        return None
    try:
        data = json.loads(body)
        return UUID(str(data["job_id"]))
    except (ValueError, TypeError, KeyError):
        return None


class JobQueue(Protocol):
    """What submitting a job needs from a queue."""

    name: str

    def send(self, job_id: UUID) -> None: ...


@dataclass(frozen=True)
class StreamEntry:
    entry_id: str
    job_id: UUID | None  # None: a malformed entry, acknowledged and dropped


def _entries(raw: list[Any] | None) -> list[StreamEntry]:
    found = []
    for entry_id, fields in raw or []:
        if entry_id is None:  # deleted while pending (Redis 6.2 returns a nil)
            continue
        body = (fields or {}).get(b"job")
        found.append(StreamEntry(entry_id.decode(), parse_job_message(body)))
    return found


class RedisStreamQueue:
    """:class:`JobQueue` on a Redis stream with a consumer group (the local queue)."""

    name = "redis-stream"

    def __init__(self, redis: RedisStore) -> None:
        self.redis = redis
        self.stream = redis.key("jobs", "stream")
        self._group_ready = False

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream (and its group) went away: a flushed or restarted Redis.
            self.ensure_group(force=True)
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unreachable ({what})") from exc

    def ensure_group(self, *, force: bool = False) -> None:
        """Create the consumer group (and the stream) once; "0": entries sent before
        any worker started are delivered too."""
        import redis

        if self._group_ready and not force:
            return
        try:
            self.redis.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def send(self, job_id: UUID) -> None:
        self._call("enqueue", self.redis.client.xadd, self.stream, {"job": job_message(job_id)})

    def read(self, consumer: str, *, count: int, block_ms: int) -> list[StreamEntry]:
        """New entries for ``consumer``, waiting up to ``block_ms`` for the first."""
        self.ensure_group()
        answer = self._call(
            "read",
            self.redis.client.xreadgroup,
            GROUP,
            consumer,
            {self.stream: ">"},
            count=count,
            block=block_ms,
        )
        return [e for _stream, raw in answer or [] for e in _entries(raw)]

    def reclaim(
        self, consumer: str, *, min_idle_ms: int, count: int, start: str = "0-0"
    ) -> tuple[str, list[StreamEntry]]:
        """Entries pending longer than ``min_idle_ms`` (their worker is gone), now
        ``consumer``'s; and the cursor to continue from ("0-0": scanned to the end)."""
        self.ensure_group()
        answer = self._call(
            "reclaim",
            self.redis.client.xautoclaim,
            self.stream,
            GROUP,
            consumer,
            min_idle_ms,
            start_id=start,
            count=count,
        )
        cursor = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
        return cursor, _entries(answer[1])

    def touch(self, consumer: str, entry_ids: list[str]) -> None:
        """Reset the idle time of entries this worker is still working on."""
        if entry_ids:
            self._call(
                "touch",
                self.redis.client.xclaim,
                self.stream,
                GROUP,
                consumer,
                0,
                entry_ids,
                justid=True,
            )

    def ack(self, entry_id: str) -> None:
        pipe = self.redis.client.pipeline(transaction=False)
        pipe.xack(self.stream, GROUP, entry_id)
        pipe.xdel(self.stream, entry_id)
        self._call("ack", pipe.execute)

    def pending(self) -> int:
        """Entries delivered and not acknowledged, across all workers."""
        self.ensure_group()
        info = self._call("pending", self.redis.client.xpending, self.stream, GROUP)
        return int(info["pending"])

    def forget_consumer(self, consumer: str) -> None:
        """Remove a stopping worker from the group, unless it still holds entries."""
        import redis

        try:
            mine = self.redis.client.xpending_range(
                self.stream, GROUP, min="-", max="+", count=1, consumername=consumer
            )
            if not mine:
                self.redis.client.xgroup_delconsumer(self.stream, GROUP, consumer)
        except (redis.RedisError, StoreUnavailable):
            pass  # a leftover consumer name is harmless


_SQS_HOST = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com", re.IGNORECASE)


def _sqs_client(url: str) -> Any:
    import boto3  # lazily: ~0.3 s of cold start that only submitting endpoints pay

    match = _SQS_HOST.match(url)
    return boto3.client("sqs", region_name=match.group(1) if match else None)


_sqs: Lazy[Any] = Lazy(lambda: _sqs_client(_queue_url()))


def _queue_url() -> str:
    from common.config import get_settings

    return get_settings().JOB_QUEUE_URL or ""


class SqsJobQueue:
    """:class:`JobQueue` on SQS (AWS)."""

    name = "sqs"

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _sqs.get()
        return self._client

    def send(self, job_id: UUID) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(QueueUrl=self.url, MessageBody=job_message(job_id))
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable("the job queue (SQS) is unreachable") from exc


def get_job_queue() -> JobQueue:
    """SQS when ``JOB_QUEUE_URL`` is set, else the Redis stream."""
    from common.config import get_settings

    url = get_settings().JOB_QUEUE_URL
    if url:
        return SqsJobQueue(url)
    from common.stores.redis_store import get_redis

    return RedisStreamQueue(get_redis())


def reset() -> None:
    """Forget the cached SQS client (tests switch queues)."""
    _sqs.reset()
