"""Git host tokens, encrypted at rest, one per (API key, host).

Two stored formats, told apart by their tag:

- ``f1:<kid>:<fernet>``: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived
  from ``SECRET_KEY`` by HKDF; ``<kid>`` names the derived key. Rotating
  ``SECRET_KEY``: the old keys go to ``SECRET_KEY_PREVIOUS`` and are still read (a
  ``MultiFernet``) until :func:`rotate_tokens` re-encrypted every token.
- ``k1:<encrypted data key>:<fernet>``: envelope encryption when
  ``GIT_TOKENS_KMS_KEY_ID`` is set (AWS). Each token gets a fresh data key from KMS
  ``GenerateDataKey``; only its KMS-encrypted copy is stored, beside the token, and
  KMS ``Decrypt`` opens it again. The plaintext key never leaves this process.

Nothing here returns a token except :func:`GitCredentialManager.token_for`, which
the git runner calls to hand it to one git command through ``GIT_ASKPASS``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, Field, SecretStr, StringConstraints, field_validator

from common.config import Settings
from common.errors import ConfigError, NotFound, StoreUnavailable

Provider = Literal["github", "gitlab", "bitbucket", "generic"]

_PROVIDERS: dict[str, Provider] = {
    "github.com": "github",
    "gitlab.com": "gitlab",
    "bitbucket.org": "bitbucket",
}
_FORMAT = b"f1"
_KMS_FORMAT = b"k1"
# Bound to every KMS data key: a ciphertext made for another purpose does not open here.
_KMS_CONTEXT = {"purpose": "ai-orchestrator git credentials"}
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


class TokenRotationStore(Protocol):
    """What :func:`rotate_tokens` needs: every ciphertext, and a compare-and-set."""

    def ciphertexts(self) -> Sequence[tuple[UUID, bytes]]: ...

    def replace_ciphertext(self, credential_id: UUID, *, old: bytes, new: bytes) -> bool: ...


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
        raise ConfigError(
            "SECRET_KEY (or GIT_TOKENS_KMS_KEY_ID) must be set on AWS: it encrypts Git tokens"
        )
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


def previous_secret_keys(settings: Settings) -> list[bytes]:
    """The old keys of ``SECRET_KEY_PREVIOUS`` (comma separated), newest first."""
    if settings.SECRET_KEY_PREVIOUS is None:
        return []
    text = settings.SECRET_KEY_PREVIOUS.get_secret_value()
    return [part.strip().encode() for part in text.split(",") if part.strip()]


class KmsDataKeys:
    """Data keys of one KMS key, for envelope encryption.

    Parameters
    ----------
    key_id:
        The KMS key's id, ARN or alias (``GIT_TOKENS_KMS_KEY_ID``).
    client:
        A boto3 KMS client; None: one is made on first use (boto3 is imported
        lazily: the functions that never encrypt or decrypt never load it).
    """

    def __init__(self, key_id: str, *, client: Any | None = None) -> None:
        self.key_id = key_id
        self._client = client

    def _kms(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("kms")
        return self._client

    def new_key(self) -> tuple[bytes, bytes]:
        """A fresh 256-bit data key: (plaintext, encrypted under the KMS key).

        Raises
        ------
        ConfigError
            KMS refused (no such key, disabled, no permission).
        StoreUnavailable
            KMS did not answer.
        """
        answer = self._call(
            "GenerateDataKey",
            lambda kms: kms.generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=_KMS_CONTEXT
            ),
        )
        return bytes(answer["Plaintext"]), bytes(answer["CiphertextBlob"])

    def open_key(self, encrypted: bytes) -> bytes:
        """The plaintext of a data key :meth:`new_key` made.

        No ``KeyId`` is passed: a symmetric ciphertext names its KMS key, so tokens
        stored under a previous ``GIT_TOKENS_KMS_KEY_ID`` still open (and rotate).

        Raises
        ------
        ConfigError, StoreUnavailable
            As :meth:`new_key`.
        """
        answer = self._call(
            "Decrypt",
            lambda kms: kms.decrypt(CiphertextBlob=encrypted, EncryptionContext=_KMS_CONTEXT),
        )
        return bytes(answer["Plaintext"])

    def _call(self, operation: str, call: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = call(self._kms())
        except ClientError as exc:
            # The code (AccessDeniedException, DisabledException, ...) says what to
            # fix; the message may quote the key ARN, which is not a secret either.
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ConfigError(
                f"KMS refused {operation} for GIT_TOKENS_KMS_KEY_ID ({code})"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"KMS did not answer {operation}") from exc
        return answer


@dataclass
class RotationResult:
    """What :func:`rotate_tokens` did."""

    rotated: int = 0
    changed_meanwhile: int = 0
    failed: list[UUID] = field(default_factory=list)


class TokenCipher:
    """Encrypts tokens under the current key; decrypts under the current or an old one.

    Parameters
    ----------
    secret:
        ``SECRET_KEY``; None only with ``kms`` (on AWS, KMS alone may hold the keys).
    previous:
        Old ``SECRET_KEY`` values, still read (``SECRET_KEY_PREVIOUS``).
    kms:
        When set, new tokens are envelope-encrypted with its data keys.

    Raises
    ------
    ConfigError
        Neither a secret nor KMS: nothing to encrypt with.
    """

    def __init__(
        self,
        secret: bytes | None,
        *,
        previous: Sequence[bytes] = (),
        kms: KmsDataKeys | None = None,
    ) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if secret is None and kms is None:
            raise ConfigError("set SECRET_KEY or GIT_TOKENS_KMS_KEY_ID to encrypt Git tokens")
        secrets = ([secret] if secret is not None else []) + [p for p in previous if p]
        keys = [derive_key(s) for s in secrets]
        self._kids = {_kid(key) for key in keys}
        self.key_id = _kid(keys[0]) if secret is not None else None
        # MultiFernet encrypts with the first key and decrypts with any of them.
        self._local = (
            MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys]) if keys else None
        )
        self._kms = kms

    def encrypt(self, token: str) -> bytes:
        """``token`` in the current format (KMS when configured, else ``SECRET_KEY``)."""
        if self._kms is not None:
            from cryptography.fernet import Fernet

            plain, wrapped = self._kms.new_key()
            sealed = Fernet(base64.urlsafe_b64encode(plain)).encrypt(token.encode())
            return _KMS_FORMAT + b":" + base64.urlsafe_b64encode(wrapped) + b":" + sealed
        assert self._local is not None and self.key_id is not None
        return _FORMAT + b":" + self.key_id + b":" + self._local.encrypt(token.encode())

    def decrypt(self, blob: bytes) -> str:
        """The token in ``blob``.

        Raises
        ------
        ConfigError
            It was encrypted under a key that is not configured (any more), or is corrupt.
        """
        from cryptography.fernet import Fernet, InvalidToken

        tag, header, sealed = _split(blob)
        if tag == _KMS_FORMAT:
            if self._kms is None:
                raise ConfigError(
                    "a stored Git token was encrypted with KMS: set GIT_TOKENS_KMS_KEY_ID"
                )
            fernet: Any = Fernet(base64.urlsafe_b64encode(self._kms.open_key(_b64(header))))
        else:
            if self._local is None or header not in self._kids:
                raise ConfigError(
                    "a stored Git token was encrypted under another SECRET_KEY"
                    " (put the old one in SECRET_KEY_PREVIOUS)"
                )
            fernet = self._local
        try:
            return str(fernet.decrypt(sealed).decode())
        except InvalidToken as exc:
            raise ConfigError("a stored Git token cannot be decrypted") from exc

    def rotate(self, blob: bytes) -> bytes:
        """``blob`` re-encrypted under the current key.

        Raises
        ------
        ConfigError
            As :meth:`decrypt`.
        """
        tag, header, sealed = _split(blob)
        if tag == _FORMAT and self._kms is None and header in self._kids:
            from cryptography.fernet import InvalidToken

            assert self._local is not None and self.key_id is not None
            try:
                # MultiFernet.rotate: opened with whichever key fits, sealed with the first.
                return _FORMAT + b":" + self.key_id + b":" + self._local.rotate(sealed)
            except InvalidToken as exc:
                raise ConfigError("a stored Git token cannot be decrypted") from exc
        return self.encrypt(self.decrypt(blob))


def _split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    parts = bytes(blob).split(b":", 2)
    if len(parts) != 3 or parts[0] not in (_FORMAT, _KMS_FORMAT):
        raise ConfigError("a stored Git token is corrupt (unknown format)")
    return parts[0], parts[1], parts[2]


def _b64(data: bytes) -> bytes:
    try:
        return base64.urlsafe_b64decode(data)
    except ValueError as exc:
        raise ConfigError("a stored Git token is corrupt (its data key)") from exc


def _kid(key: bytes) -> bytes:
    return hashlib.sha256(key).hexdigest()[:8].encode()


def token_cipher(settings: Settings, *, kms_client: Any | None = None) -> TokenCipher:
    """The cipher the settings ask for: KMS when ``GIT_TOKENS_KMS_KEY_ID`` is set,
    ``SECRET_KEY`` (and ``SECRET_KEY_PREVIOUS``) for encrypting or reading the rest.

    Raises
    ------
    ConfigError
        On Lambda with neither ``SECRET_KEY`` nor ``GIT_TOKENS_KMS_KEY_ID``.
    """
    kms_key = settings.GIT_TOKENS_KMS_KEY_ID
    has_secret = settings.SECRET_KEY is not None and bool(settings.SECRET_KEY.get_secret_value())
    # With KMS on Lambda SECRET_KEY may be absent: KMS holds every key there. Locally the
    # generated key costs nothing and still opens tokens stored before KMS was set.
    secret = None if (kms_key and settings.on_lambda and not has_secret) else secret_key(settings)
    kms = KmsDataKeys(kms_key, client=kms_client) if kms_key else None
    return TokenCipher(secret, previous=previous_secret_keys(settings), kms=kms)


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


def rotate_tokens(*, store: TokenRotationStore, cipher: TokenCipher) -> RotationResult:
    """Re-encrypt every stored token under the cipher's current key (or KMS).

    A token its owner replaced while this ran is left alone: the replacement was
    already encrypted under the current key (the write is a compare-and-set). A
    token no configured key opens is counted in ``failed``, by id, and left as it
    is: drop no old key while any fails.
    """
    result = RotationResult()
    for credential_id, blob in store.ciphertexts():
        try:
            fresh = cipher.rotate(blob)
        except ConfigError:
            result.failed.append(credential_id)
            continue
        if store.replace_ciphertext(credential_id, old=blob, new=fresh):
            result.rotated += 1
        else:
            result.changed_meanwhile += 1
    return result


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

    def ciphertexts(self) -> Sequence[tuple[UUID, bytes]]:
        with self._pg.connection() as conn:
            rows = conn.execute(
                "SELECT id, token_ciphertext FROM git_credentials ORDER BY id"
            ).fetchall()
        return [(UUID(str(r["id"])), bytes(r["token_ciphertext"])) for r in rows]

    def replace_ciphertext(self, credential_id: UUID, *, old: bytes, new: bytes) -> bool:
        # updated_at stays: it tells the owner when the token changed, and it did not.
        with self._pg.connection() as conn:
            cursor = conn.execute(
                "UPDATE git_credentials SET token_ciphertext = %s"
                " WHERE id = %s AND token_ciphertext = %s",
                (new, credential_id, old),
            )
            return bool(cursor.rowcount)


def get_credential_manager() -> GitCredentialManager:
    """The manager over PostgreSQL, with the configured keys."""
    from common.config import get_settings
    from common.stores.postgres import get_postgres

    return GitCredentialManager(
        store=PostgresGitCredentialStore(get_postgres()),
        cipher=token_cipher(get_settings()),
    )
