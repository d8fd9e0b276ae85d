"""Git host tokens, encrypted at rest, one per (API key, host).

A token is encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived
from ``SECRET_KEY`` by HKDF. The stored value starts with a format tag and the
derived key's id (``f1:<kid>:``) so that a rotation of ``SECRET_KEY`` can later
decrypt with the old key and re-encrypt with the new one; on AWS the derived key
can come from KMS instead (one function, :func:`derive_key`, to replace).

Nothing here returns a token except :func:`token_for`, which the git runner calls
to hand it to one git command through ``GIT_ASKPASS``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, Field, SecretStr, StringConstraints, field_validator

from common.config import Settings
from common.errors import ConfigError, NotFound

Provider = Literal["github", "gitlab", "bitbucket", "generic"]

_PROVIDERS: dict[str, Provider] = {
    "github.com": "github",
    "gitlab.com": "gitlab",
    "bitbucket.org": "bitbucket",
}
_FORMAT = b"f1"
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")

Token = Annotated[SecretStr, Field(min_length=1, max_length=4096)]


class GitCredentialCreate(BaseModel):
    host: Annotated[str, StringConstraints(max_length=255)] = Field(
        description="The git host, e.g. github.com (a port may follow: host:8443)."
    )
    token: Token = Field(description="A personal access token; never shown again.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return normalize_host(value)


class GitCredentialUpdate(BaseModel):
    token: Token = Field(description="The new token (a rotation); the old one is discarded.")


class GitCredentialPublic(BaseModel):
    id: UUID
    provider: Provider
    host: str
    hint: str = Field(description="A masked hint of the token, e.g. ghp_…a1b2.")
    created_at: datetime
    updated_at: datetime


class GitCredentialStore(Protocol):
    """What the manager needs from storage (PostgreSQL's ``git_credentials`` table)."""

    def insert(
        self, *, key_id: UUID, provider: str, host: str, ciphertext: bytes, hint: str
    ) -> dict[str, Any]: ...

    def list(self, *, key_id: UUID) -> list[dict[str, Any]]: ...

    def find(self, *, key_id: UUID, credential_id: UUID) -> dict[str, Any] | None: ...

    def find_by_host(self, *, key_id: UUID, host: str) -> dict[str, Any] | None: ...

    def update(
        self, *, key_id: UUID, credential_id: UUID, ciphertext: bytes, hint: str
    ) -> dict[str, Any] | None: ...

    def delete(self, *, key_id: UUID, credential_id: UUID) -> bool: ...


def normalize_host(value: str) -> str:
    """``value`` as a lower-case host[:port]; a URL is reduced to its host.

    Raises
    ------
    ValueError
        Not a host name.
    """
    text = value.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].rsplit("@", 1)[-1]
    if not _HOST.match(text):
        raise ValueError("must be a host name such as github.com")
    return text


def provider_for(host: str) -> Provider:
    """The provider a host belongs to; any other https host is ``generic``."""
    name = host.split(":", 1)[0]
    return _PROVIDERS.get(name, "generic")


def mask_token(token: str) -> str:
    """A hint that identifies a token to its owner without revealing it.

    Short tokens show only their last two characters: four of eight would give away half.
    """
    if len(token) >= 16:
        return f"{token[:4]}…{token[-4:]}"
    if len(token) >= 8:
        return f"…{token[-2:]}"
    return "…"


def secret_key(settings: Settings) -> bytes:
    """The configured ``SECRET_KEY``; locally, one generated once into DATA_DIR/secret.key.

    Raises
    ------
    ConfigError
        On Lambda without ``SECRET_KEY``: a generated key would differ per instance.
    """
    if settings.SECRET_KEY is not None and settings.SECRET_KEY.get_secret_value():
        return settings.SECRET_KEY.get_secret_value().encode()
    if settings.on_lambda:
        raise ConfigError("SECRET_KEY must be set on AWS (it encrypts stored Git tokens)")
    path = settings.DATA_DIR.expanduser() / "secret.key"
    return _read_or_create_key(path)


def _read_or_create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once must not both write a key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.urlsafe_b64encode(os.urandom(32)))
    return path.read_bytes().strip()


class TokenCipher:
    """Encrypts and decrypts tokens under one key derived from ``SECRET_KEY``."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.fernet import Fernet

        key = derive_key(secret)
        self.key_id = hashlib.sha256(key).hexdigest()[:8].encode()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, token: str) -> bytes:
        return _FORMAT + b":" + self.key_id + b":" + self._fernet.encrypt(token.encode())

    def decrypt(self, blob: bytes) -> str:
        """The token in ``blob``.

        Raises
        ------
        ConfigError
            It was encrypted under another ``SECRET_KEY`` or is corrupt.
        """
        from cryptography.fernet import InvalidToken

        parts = bytes(blob).split(b":", 2)
        if len(parts) != 3 or parts[0] != _FORMAT or parts[1] != self.key_id:
            raise ConfigError("a stored Git token was encrypted under another SECRET_KEY")
        try:
            return self._fernet.decrypt(parts[2]).decode()
        except InvalidToken as exc:
            raise ConfigError("a stored Git token cannot be decrypted") from exc


def derive_key(secret: bytes) -> bytes:
    """32 bytes for Fernet from ``SECRET_KEY`` (HKDF-SHA256, bound to this purpose)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"ao git credentials v1"
    ).derive(secret)


class GitCredentialManager:
    """Create, list, rotate and delete one API key's Git tokens.

    Parameters
    ----------
    store:
        The ``git_credentials`` table (or a fake).
    cipher:
        Encrypts the tokens.
    """

    def __init__(self, *, store: GitCredentialStore, cipher: TokenCipher) -> None:
        self._store = store
        self._cipher = cipher

    def create(self, *, key_id: UUID, body: GitCredentialCreate) -> GitCredentialPublic:
        """Store a token for ``body.host``.

        Raises
        ------
        Conflict
            The key already has a token for that host (rotate it with :meth:`update`).
        """
        token = body.token.get_secret_value()
        row = self._store.insert(
            key_id=key_id,
            provider=provider_for(body.host),
            host=body.host,
            ciphertext=self._cipher.encrypt(token),
            hint=mask_token(token),
        )
        return _public(row)

    def list(self, *, key_id: UUID) -> list[GitCredentialPublic]:
        """The key's credentials: provider, host and hint only."""
        return [_public(row) for row in self._store.list(key_id=key_id)]

    def update(
        self, *, key_id: UUID, credential_id: UUID, body: GitCredentialUpdate
    ) -> GitCredentialPublic:
        """Replace the token (rotate it).

        Raises
        ------
        NotFound
            No such credential for this key.
        """
        token = body.token.get_secret_value()
        row = self._store.update(
            key_id=key_id,
            credential_id=credential_id,
            ciphertext=self._cipher.encrypt(token),
            hint=mask_token(token),
        )
        if row is None:
            raise NotFound(f"no git credential {credential_id}")
        return _public(row)

    def delete(self, *, key_id: UUID, credential_id: UUID) -> None:
        """Forget the credential.

        Raises
        ------
        NotFound
            No such credential for this key.
        """
        if not self._store.delete(key_id=key_id, credential_id=credential_id):
            raise NotFound(f"no git credential {credential_id}")

    def token_for(self, *, key_id: UUID, host: str) -> str | None:
        """The decrypted token for ``host``, or None; only the git runner should call this."""
        row = self._store.find_by_host(key_id=key_id, host=normalize_host(host))
        if row is None:
            return None
        return self._cipher.decrypt(bytes(row["token_ciphertext"]))


def _public(row: dict[str, Any]) -> GitCredentialPublic:
    fields = {k: row[k] for k in ("id", "provider", "host", "hint", "created_at", "updated_at")}
    return GitCredentialPublic.model_validate(fields)


class PostgresGitCredentialStore:
    """``git_credentials`` in PostgreSQL (migration 0001)."""

    _COLUMNS = "id, provider, host, hint, created_at, updated_at"

    def __init__(self, postgres: Any) -> None:
        self._pg = postgres

    def insert(
        self, *, key_id: UUID, provider: str, host: str, ciphertext: bytes, hint: str
    ) -> dict[str, Any]:
        with self._pg.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "INSERT INTO git_credentials (key_id, provider, host, token_ciphertext, hint)"
                f" VALUES (%s, %s, %s, %s, %s) RETURNING {self._COLUMNS}",
                (key_id, provider, host, ciphertext, hint),
            ).fetchone()
        assert row is not None
        return row

    def list(self, *, key_id: UUID) -> list[dict[str, Any]]:
        with self._pg.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                f"SELECT {self._COLUMNS} FROM git_credentials WHERE key_id = %s ORDER BY host",
                (key_id,),
            ).fetchall()
        return rows

    def find(self, *, key_id: UUID, credential_id: UUID) -> dict[str, Any] | None:
        with self._pg.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"SELECT {self._COLUMNS} FROM git_credentials WHERE key_id = %s AND id = %s",
                (key_id, credential_id),
            ).fetchone()
        return row

    def find_by_host(self, *, key_id: UUID, host: str) -> dict[str, Any] | None:
        with self._pg.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"SELECT {self._COLUMNS}, token_ciphertext FROM git_credentials"
                " WHERE key_id = %s AND host = %s",
                (key_id, host),
            ).fetchone()
        return row

    def update(
        self, *, key_id: UUID, credential_id: UUID, ciphertext: bytes, hint: str
    ) -> dict[str, Any] | None:
        with self._pg.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "UPDATE git_credentials SET token_ciphertext = %s, hint = %s, updated_at = now()"
                f" WHERE key_id = %s AND id = %s RETURNING {self._COLUMNS}",
                (ciphertext, hint, key_id, credential_id),
            ).fetchone()
        return row

    def delete(self, *, key_id: UUID, credential_id: UUID) -> bool:
        with self._pg.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM git_credentials WHERE key_id = %s AND id = %s",
                (key_id, credential_id),
            )
            return bool(cursor.rowcount)


def get_credential_manager() -> GitCredentialManager:
    """The manager over PostgreSQL, with the configured key."""
    from common.config import get_settings
    from common.stores.postgres import get_postgres

    return GitCredentialManager(
        store=PostgresGitCredentialStore(get_postgres()),
        cipher=TokenCipher(secret_key(get_settings())),
    )
