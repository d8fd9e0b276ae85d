from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from common.auth import (
    authenticate,
    create_key,
    generate_key,
    hash_key,
    list_keys,
    revoke_key,
    split_key,
)
from common.errors import NotFound, Unauthorized


class MemoryKeyStore:
    """The ApiKeyStore protocol over dicts."""

    def __init__(self) -> None:
        self.users: dict[str, UUID] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.touched: list[UUID] = []

    def ensure_user(self, name: str) -> UUID:
        return self.users.setdefault(name, uuid4())

    def insert_api_key(
        self, *, user_id: UUID, name: str, prefix: str, key_hash: bytes
    ) -> dict[str, Any]:
        user = next(n for n, i in self.users.items() if i == user_id)
        row = {
            "id": uuid4(),
            "user_id": user_id,
            "user_name": user,
            "name": name,
            "prefix": prefix,
            "key_hash": key_hash,
            "created_at": datetime.now(UTC),
            "revoked_at": None,
            "last_used_at": None,
        }
        self.rows[prefix] = row
        return row

    def find_api_key(self, prefix: str) -> dict[str, Any] | None:
        return self.rows.get(prefix)

    def list_api_keys(self) -> list[dict[str, Any]]:
        return list(self.rows.values())

    def revoke_api_key(self, prefix: str) -> datetime | None:
        row = self.rows.get(prefix)
        if row is None:
            return None
        row["revoked_at"] = row["revoked_at"] or datetime.now(UTC)
        return row["revoked_at"]

    def touch_api_key(self, key_id: UUID) -> None:
        self.touched.append(key_id)


def test_generated_key_has_a_visible_prefix_and_32_random_bytes() -> None:
    key, prefix = generate_key()

    assert key.startswith(f"ao_{prefix}_")
    assert len(prefix) == 8
    secret = key.split("_", 2)[2]
    assert len(secret) >= 43  # 32 bytes, URL-safe base64
    assert split_key(key) == prefix
    assert generate_key()[0] != key


@pytest.mark.parametrize(
    "bad",
    ["", "ao_", "ao_short", "xx_abcdefgh_secretsecret", "ao_ABCDEFGH_secret", "ao_abcdefghXsecret"],
)
def test_malformed_keys_have_no_prefix(bad: str) -> None:
    assert split_key(bad) is None


def test_store_keeps_only_the_hash_and_lists_never_show_the_secret() -> None:
    store = MemoryKeyStore()

    created = create_key(store=store, name="ci", user="alice")

    row = store.rows[created.prefix]
    assert row["key_hash"] == hash_key(created.key)
    assert created.key not in repr(row)
    listed = list_keys(store=store)
    assert [k.prefix for k in listed] == [created.prefix]
    assert "key" not in listed[0].model_dump()
    assert listed[0].user == "alice"


def test_valid_key_authenticates_and_is_touched() -> None:
    store = MemoryKeyStore()
    created = create_key(store=store, name="ci")

    principal = authenticate(created.key, store=store)

    assert principal.prefix == created.prefix
    assert principal.name == "ci"
    assert store.touched == [principal.key_id]


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda key: None, "missing API key"),
        (lambda key: "", "missing API key"),
        (lambda key: "not-a-key", "invalid API key"),
        (lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"), "invalid API key"),
        (lambda key: "ao_zzzzzzzz_" + key.split("_", 2)[2], "invalid API key"),
    ],
)
def test_bad_keys_are_refused_without_echoing_them(make_key: Any, message: str) -> None:
    store = MemoryKeyStore()
    created = create_key(store=store, name="ci")
    presented = make_key(created.key)

    with pytest.raises(Unauthorized) as caught:
        authenticate(presented, store=store)

    assert message in caught.value.message
    if presented:
        assert presented not in caught.value.message
    assert store.touched == []


def test_revoked_key_is_refused_and_revoking_twice_keeps_the_first_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No Redis in this tier: revoking ends what this process remembers, nothing more.
    monkeypatch.setattr("common.admission._redis", lambda: None)
    store = MemoryKeyStore()
    created = create_key(store=store, name="ci")

    first = revoke_key(store=store, prefix=created.prefix)
    second = revoke_key(store=store, prefix=created.prefix)

    assert first == second
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(created.key, store=store)


def test_revoking_an_unknown_prefix_is_not_found() -> None:
    with pytest.raises(NotFound):
        revoke_key(store=MemoryKeyStore(), prefix="nope0000")
