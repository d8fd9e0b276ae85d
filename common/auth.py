"""API keys: created once and shown once, stored only as a hash, found by prefix.

A key looks like ``ao_<prefix>_<secret>``: ``prefix`` is 8 visible characters that
name the key in lists, logs and ``keys revoke``; ``secret`` is 32 random bytes,
URL-safe. PostgreSQL keeps SHA-256 of the whole key (a slow hash adds nothing for
256 random bits) and the check is a constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel

from common.errors import NotFound, Unauthorized

KEY_SCHEME = "ao"
PREFIX_LENGTH = 8
SECRET_BYTES = 32
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
TOUCH_EVERY = timedelta(minutes=1)


class ApiKeyStore(Protocol):
    """What authentication needs from a store (``PostgresStore`` implements it)."""

    def ensure_user(self, name: str) -> UUID: ...

    def insert_api_key(
        self, *, user_id: UUID, name: str, prefix: str, key_hash: bytes
    ) -> dict[str, Any]: ...

    def find_api_key(self, prefix: str) -> dict[str, Any] | None: ...

    def list_api_keys(self) -> list[dict[str, Any]]: ...

    def revoke_api_key(self, prefix: str) -> datetime | None: ...

    def touch_api_key(self, key_id: UUID) -> None: ...


class ApiKeyPublic(BaseModel):
    """A key as lists show it: never the secret, never the hash."""

    id: UUID
    name: str
    prefix: str
    user: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str  # shown once, at creation


class Principal(BaseModel):
    """Who is calling: the key that authenticated the request."""

    key_id: UUID
    prefix: str
    name: str
    user_id: UUID
    user: str


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def split_key(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    head = f"{KEY_SCHEME}_"
    if not key.startswith(head) or len(key) < len(head) + PREFIX_LENGTH + 2:
        return None
    prefix = key[len(head) : len(head) + PREFIX_LENGTH]
    if key[len(head) + PREFIX_LENGTH] != "_" or any(c not in _PREFIX_ALPHABET for c in prefix):
        return None
    return prefix


def generate_key() -> tuple[str, str]:
    """A new ``(key, prefix)``."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}", prefix


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "user": row["user_name"],
        "created_at": row["created_at"],
        "revoked_at": row.get("revoked_at"),
        "last_used_at": row.get("last_used_at"),
    }


def create_key(*, store: ApiKeyStore, name: str, user: str = "local") -> ApiKeyCreated:
    """Create a key for ``user`` (created on first use).

    Returns
    -------
    ApiKeyCreated
        With ``key``: the only time the full key exists outside the caller's hands.
    """
    user_id = store.ensure_user(user)
    key, prefix = generate_key()
    row = store.insert_api_key(user_id=user_id, name=name, prefix=prefix, key_hash=hash_key(key))
    return ApiKeyCreated(key=key, **_public(row))


def list_keys(*, store: ApiKeyStore) -> list[ApiKeyPublic]:
    return [ApiKeyPublic(**_public(row)) for row in store.list_api_keys()]


def revoke_key(*, store: ApiKeyStore, prefix: str) -> datetime:
    """Revoke the key with ``prefix``; revoking twice keeps the first time.

    Raises
    ------
    NotFound
        No key has that prefix.
    """
    revoked_at = store.revoke_api_key(prefix)
    if revoked_at is None:
        raise NotFound(f"no API key with prefix {prefix}")
    # After the commit: servers that remember the key look it up again from now on.
    from common.admission import invalidate_principals

    invalidate_principals()
    return revoked_at


def presented_key(key: str | None) -> str:
    """``key`` when one was sent; a missing key is a 401 before any store is asked."""
    if not key:
        raise Unauthorized("missing API key: send it in the X-API-Key header")
    return key


def authenticate(key: str | None, *, store: ApiKeyStore) -> Principal:
    """The principal behind ``key``.

    Raises
    ------
    Unauthorized
        Missing, malformed, unknown or revoked key. The message never repeats the key.
    """
    key = presented_key(key)
    prefix = split_key(key)
    row = store.find_api_key(prefix) if prefix else None
    # Compare even when the prefix is unknown, so timing does not tell which part was wrong.
    expected = row["key_hash"] if row else b"\0" * 32
    if not hmac.compare_digest(bytes(expected), hash_key(key)) or row is None:
        raise Unauthorized("invalid API key")
    if row["revoked_at"] is not None:
        raise Unauthorized("this API key has been revoked")
    last_used = row.get("last_used_at")
    if last_used is None or datetime.now(UTC) - last_used > TOUCH_EVERY:
        # "Last used" is for people, to the minute: not a write on every request.
        store.touch_api_key(row["id"])
    return Principal(
        key_id=row["id"],
        prefix=row["prefix"],
        name=row["name"],
        user_id=row["user_id"],
        user=row["user_name"],
    )
