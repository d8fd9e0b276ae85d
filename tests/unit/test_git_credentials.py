"""GitCredentialManager on a fake store: encryption round trip, masking, provider, key file."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from common.config import Settings
from common.errors import ConfigError, NotFound
from common.git.credentials import (
    GitCredentialCreate,
    GitCredentialManager,
    GitCredentialUpdate,
    TokenCipher,
    mask_token,
    normalize_host,
    provider_for,
    secret_key,
)

TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123a1b2"


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[UUID, dict[str, Any]] = {}

    def insert(
        self, *, key_id: UUID, provider: str, host: str, ciphertext: bytes, hint: str
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": uuid4(),
            "key_id": key_id,
            "provider": provider,
            "host": host,
            "token_ciphertext": ciphertext,
            "hint": hint,
            "created_at": now,
            "updated_at": now,
        }
        self.rows[row["id"]] = row
        return row

    def list(self, *, key_id: UUID) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["key_id"] == key_id]

    def find(self, *, key_id: UUID, credential_id: UUID) -> dict[str, Any] | None:
        row = self.rows.get(credential_id)
        return row if row and row["key_id"] == key_id else None

    def find_by_host(self, *, key_id: UUID, host: str) -> dict[str, Any] | None:
        return next((r for r in self.list(key_id=key_id) if r["host"] == host), None)

    def update(
        self, *, key_id: UUID, credential_id: UUID, ciphertext: bytes, hint: str
    ) -> dict[str, Any] | None:
        row = self.find(key_id=key_id, credential_id=credential_id)
        if row:
            row.update(token_ciphertext=ciphertext, hint=hint)
        return row

    def delete(self, *, key_id: UUID, credential_id: UUID) -> bool:
        return (
            self.rows.pop(credential_id, None) is not None
            if self.find(key_id=key_id, credential_id=credential_id)
            else False
        )


@pytest.fixture
def manager() -> tuple[GitCredentialManager, FakeStore]:
    store = FakeStore()
    return GitCredentialManager(store=store, cipher=TokenCipher(b"k" * 40)), store


def test_token_is_encrypted_at_rest_and_decrypts_back(manager: Any) -> None:
    mgr, store = manager
    key = uuid4()
    created = mgr.create(key_id=key, body=GitCredentialCreate(host="GitHub.com", token=TOKEN))
    blob = store.rows[created.id]["token_ciphertext"]
    assert TOKEN.encode() not in blob
    assert blob.startswith(b"f1:")
    assert mgr.token_for(key_id=key, host="github.com") == TOKEN
    assert mgr.token_for(key_id=uuid4(), host="github.com") is None


def test_public_view_has_provider_host_and_hint_only(manager: Any) -> None:
    mgr, _ = manager
    key = uuid4()
    mgr.create(key_id=key, body=GitCredentialCreate(host="gitlab.com", token="glpat-" + "x" * 20))
    [listed] = mgr.list(key_id=key)
    dumped = listed.model_dump_json()
    assert listed.provider == "gitlab" and listed.host == "gitlab.com"
    assert "x" * 8 not in dumped and "token" not in listed.model_dump()


def test_rotate_replaces_token_and_delete_forgets(manager: Any) -> None:
    mgr, _ = manager
    key = uuid4()
    created = mgr.create(key_id=key, body=GitCredentialCreate(host="bitbucket.org", token=TOKEN))
    new = "ATBB" + "n" * 30 + "9z9z"
    rotated = mgr.update(key_id=key, credential_id=created.id, body=GitCredentialUpdate(token=new))
    assert rotated.hint == "ATBB…9z9z"
    assert mgr.token_for(key_id=key, host="bitbucket.org") == new
    with pytest.raises(NotFound):
        mgr.update(key_id=uuid4(), credential_id=created.id, body=GitCredentialUpdate(token=new))
    with pytest.raises(NotFound):
        mgr.delete(key_id=uuid4(), credential_id=created.id)
    mgr.delete(key_id=key, credential_id=created.id)
    assert mgr.list(key_id=key) == []


def test_another_secret_key_cannot_decrypt() -> None:
    blob = TokenCipher(b"a" * 40).encrypt(TOKEN)
    with pytest.raises(ConfigError):
        TokenCipher(b"b" * 40).decrypt(blob)


@pytest.mark.parametrize(
    ("token", "hint"),
    [(TOKEN, "ghp_…a1b2"), ("shorttoken", "…en"), ("abc", "…")],
)
def test_mask_token(token: str, hint: str) -> None:
    assert mask_token(token) == hint


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("github.com", "github"),
        ("gitlab.com", "gitlab"),
        ("bitbucket.org", "bitbucket"),
        ("git.example.com:8443", "generic"),
    ],
)
def test_provider_from_host(host: str, provider: str) -> None:
    assert provider_for(host) == provider


def test_host_is_normalized_and_checked() -> None:
    assert normalize_host("https://user@GitHub.com/org/repo.git") == "github.com"
    with pytest.raises(ValidationError):
        GitCredentialCreate(host="not a host", token=TOKEN)


def test_secret_key_is_generated_once_with_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    settings = Settings(_env_file=None, DATA_DIR=tmp_path, SECRET_KEY=None)
    first = secret_key(settings)
    assert secret_key(settings) == first and len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "secret.key").st_mode) == 0o600


def test_secret_key_is_required_on_lambda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "f")
    settings = Settings(_env_file=None, DATA_DIR=tmp_path, SECRET_KEY=None)
    with pytest.raises(ConfigError):
        secret_key(settings)
