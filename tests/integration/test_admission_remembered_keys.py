"""Remembered API keys: a repeat costs no PostgreSQL query, and a revoke made by any
process is refused from the next request on (real PostgreSQL and Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common import admission
from common.auth import Principal
from common.config import get_settings
from common.errors import Unauthorized


@pytest.fixture
def lookups(stores: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every PostgreSQL lookup of a key that admission makes."""
    seen: list[str] = []
    real = admission.authenticate

    def counting(key: str, *, store: Any) -> Principal:
        seen.append(key)
        return real(key, store=store)

    monkeypatch.setattr(admission, "authenticate", counting)
    admission.principals.clear()
    yield seen
    admission.principals.clear()


def admit(key: str, requests: int = 1) -> tuple[Principal, list[int] | None]:
    return admission.admit(key, get_settings(), requests)


def test_a_remembered_key_is_not_looked_up_again(api_key: str, lookups: list[str]) -> None:
    first, left_first = admit(api_key)
    second, left_second = admit(api_key, requests=3)

    assert first == second
    assert lookups == [api_key]
    limit = get_settings().RATE_LIMIT_PER_MINUTE
    # Still counted: one request, then three more, in the same window.
    assert left_first == [limit - 1]
    assert left_second == [limit - 2, limit - 3, limit - 4]


def test_a_revoke_by_another_process_is_refused_at_the_next_request(
    api_key: str, lookups: list[str]
) -> None:
    from common.stores.postgres import get_postgres
    from common.stores.redis_store import get_redis

    admit(api_key)
    # What another process's revoke does: commit in PostgreSQL, then move the epoch
    # in Redis (this process's memory is not touched).
    prefix = api_key.split("_")[1]
    assert get_postgres().revoke_api_key(prefix) is not None
    get_redis().client.set(get_redis().key(admission.EPOCH_KEY), "moved-by-another-process")

    with pytest.raises(Unauthorized, match="revoked"):
        admit(api_key)
    assert lookups == [api_key, api_key]


def test_without_the_epoch_nothing_remembered_is_trusted(api_key: str, lookups: list[str]) -> None:
    from common.stores.redis_store import get_redis

    admit(api_key)
    # A Redis that restarted without persistence has lost the epoch.
    get_redis().client.delete(get_redis().key(admission.EPOCH_KEY))

    admit(api_key)
    admit(api_key)
    assert lookups == [api_key, api_key]  # looked up once more, then remembered again


def test_a_revoke_that_missed_redis_is_seen_when_the_memory_expires(
    api_key: str, lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from common.stores.postgres import get_postgres

    monkeypatch.setattr(admission.principals, "ttl_s", 0.0)
    admit(api_key)
    get_postgres().revoke_api_key(api_key.split("_")[1])  # no epoch change at all

    with pytest.raises(Unauthorized, match="revoked"):
        admit(api_key)


def test_revoke_key_moves_the_epoch(api_key: str, lookups: list[str]) -> None:
    from common.auth import revoke_key
    from common.stores.postgres import get_postgres
    from common.stores.redis_store import get_redis

    redis = get_redis()
    admit(api_key)
    before = redis.client.get(redis.key(admission.EPOCH_KEY))
    revoke_key(store=get_postgres(), prefix=api_key.split("_")[1])

    assert redis.client.get(redis.key(admission.EPOCH_KEY)) not in (None, before)
