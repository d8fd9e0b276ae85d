"""One key's concurrent requests share a lookup, but never one that began before they arrived."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from uuid import uuid4

import pytest

from common.auth import Principal
from common.config import Settings
from common.errors import RateLimited, StoreUnavailable, Unauthorized
from common.web.deps import Admissions

KEY = "ao_abcdefgh_secret"
PRINCIPAL = Principal(key_id=uuid4(), prefix="abcdefgh", name="test", user_id=uuid4(), user="u")
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` without its last step: it sets the thread's loop to None, and
    Mangum (the Lambda door, called in-process by later tests) asks for that loop."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def settings(limit: int = 0) -> Settings:
    return Settings(_env_file=None, RATE_LIMIT_PER_MINUTE=limit)  # type: ignore[call-arg]


class FakeCheck:
    """The database and the limiter, as one lookup sees them: read when it begins."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.revoked = False
        self.fail_next: Exception | None = None
        self.counted = 0
        self.began = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, key: str, settings: Settings, requests: int) -> tuple[Principal, Any]:
        revoked, failure = self.revoked, self.fail_next
        self.fail_next = None
        self.batches.append(requests)
        self.began.set()
        assert self.release.wait(5)
        if failure is not None:
            raise failure
        if revoked:
            raise Unauthorized("this API key has been revoked")
        limit = settings.RATE_LIMIT_PER_MINUTE
        if limit <= 0:
            return PRINCIPAL, None
        first = self.counted + 1
        self.counted += requests
        return PRINCIPAL, [limit - (first + i) for i in range(requests)]

    def hold(self) -> None:
        self.began.clear()
        self.release.clear()


async def outcome(call: Awaitable[Principal]) -> Principal | Exception:
    try:
        return await call
    except Exception as exc:
        return exc


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)


def test_a_burst_with_one_key_costs_two_lookups() -> None:
    check = FakeCheck()

    async def burst() -> list[Principal | Exception]:
        admissions = Admissions(check)
        check.hold()
        first = asyncio.ensure_future(outcome(admissions.admit(KEY, settings())))
        await until(check.began.is_set)
        rest = [asyncio.ensure_future(outcome(admissions.admit(KEY, settings()))) for _ in range(9)]
        await asyncio.sleep(0.01)  # all nine are waiting, none has a lookup of its own
        check.release.set()
        return await asyncio.gather(first, *rest)

    results = run(burst())

    assert results == [PRINCIPAL] * 10
    assert check.batches == [1, 9]


def test_a_request_never_joins_a_lookup_that_began_before_it() -> None:
    check = FakeCheck()

    async def revoked_meanwhile() -> list[Principal | Exception]:
        admissions = Admissions(check)
        check.hold()
        before = asyncio.ensure_future(outcome(admissions.admit(KEY, settings())))
        await until(check.began.is_set)
        check.revoked = True  # `keys revoke` in another process, while that lookup runs
        after = asyncio.ensure_future(outcome(admissions.admit(KEY, settings())))
        await asyncio.sleep(0.01)
        check.release.set()
        return await asyncio.gather(before, after)

    before, after = run(revoked_meanwhile())

    assert before == PRINCIPAL  # it arrived before the revocation
    assert isinstance(after, Unauthorized) and "revoked" in after.message
    assert check.batches == [1, 1]


def test_a_batch_is_refused_exactly_where_single_requests_would_be() -> None:
    check = FakeCheck()

    async def over_the_limit() -> list[Principal | Exception]:
        admissions = Admissions(check)
        check.hold()
        first = asyncio.ensure_future(outcome(admissions.admit(KEY, settings(limit=3))))
        await until(check.began.is_set)
        rest = [
            asyncio.ensure_future(outcome(admissions.admit(KEY, settings(limit=3))))
            for _ in range(4)
        ]
        await asyncio.sleep(0.01)
        check.release.set()
        return await asyncio.gather(first, *rest)

    results = run(over_the_limit())

    assert results[:3] == [PRINCIPAL] * 3
    refused = results[3:]
    assert all(isinstance(r, RateLimited) for r in refused)
    assert all(
        1 <= int(r.headers["Retry-After"]) <= 60 for r in refused if isinstance(r, RateLimited)
    )
    assert check.batches == [1, 4]


def test_a_failed_lookup_fails_its_batch_and_the_next_one_starts_afresh() -> None:
    check = FakeCheck()

    async def store_down_once() -> list[Principal | Exception]:
        admissions = Admissions(check)
        check.hold()
        first = asyncio.ensure_future(outcome(admissions.admit(KEY, settings())))
        await until(check.began.is_set)
        check.fail_next = StoreUnavailable("PostgreSQL is unreachable (DATABASE_URL)")
        batch = [
            asyncio.ensure_future(outcome(admissions.admit(KEY, settings()))) for _ in range(3)
        ]
        await asyncio.sleep(0.01)
        check.release.set()
        results = await asyncio.gather(first, *batch)
        return [*results, await outcome(admissions.admit(KEY, settings()))]

    first, *failed, later = run(store_down_once())

    assert first == PRINCIPAL
    assert len(failed) == 3 and all(isinstance(r, StoreUnavailable) for r in failed)
    assert later == PRINCIPAL
    assert check.batches == [1, 3, 1]


def test_keys_do_not_wait_for_each_other() -> None:
    check = FakeCheck()

    async def two_keys() -> Principal | Exception:
        admissions = Admissions(check)
        check.hold()
        slow = asyncio.ensure_future(outcome(admissions.admit(KEY, settings())))
        await until(check.began.is_set)
        other = asyncio.ensure_future(outcome(admissions.admit("ao_zzzzzzzz_other", settings())))
        await until(lambda: len(check.batches) == 2)  # its own lookup began at once
        check.release.set()
        await slow
        return await other

    assert run(two_keys()) == PRINCIPAL


@pytest.mark.parametrize("limit", [0, 5])
def test_one_request_alone_is_one_lookup(limit: int) -> None:
    check = FakeCheck()

    async def one() -> Principal:
        return await Admissions(check).admit(KEY, settings(limit))

    assert run(one()) == PRINCIPAL
    assert check.batches == [1]
