"""Rotating the key of stored Git tokens against the run's PostgreSQL: the CLI
re-encrypts every token, after which the old key can go; and KMS envelope
encryption (moto's KMS) that needs no SECRET_KEY at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

import pytest

from common.cli import main
from tests.integration.test_git_sync import call, principal_of
from tests.utils.aws import mocked_aws

TOKENS = {
    "github.com": "ghp_" + "R0tateMe" * 4 + "a1b2",
    "gitlab.com": "glpat-" + "K3ep" * 6 + "c3d4",
}
OLD = "old-secret-" + "o" * 32
NEW = "new-secret-" + "n" * 32
# The CLI rotates every row of the run's database: test_git_sync.py's tokens (under
# its SECRET_KEY) and those the tests here stored before, under OLD or NEW.
SYNC_TESTS_KEY = "pytest-" + "k" * 40
EVERY_KEY = f"{OLD},{NEW},{SYNC_TESTS_KEY}"


@pytest.fixture
def kms_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A KMS key in moto; its id."""
    with mocked_aws(monkeypatch):
        import boto3

        kms = boto3.client("kms", region_name="us-east-1")
        yield str(kms.create_key(Description="git tokens")["KeyMetadata"]["KeyId"])


def store_tokens(api_key: str, hosts: list[str]) -> None:
    for host in hosts:
        status, body = call(
            "git_credentials_create",
            "POST",
            "/api/git/credentials",
            api_key,
            {"host": host, "token": TOKENS[host]},
        )
        assert status == 201, body


def stored_blobs(key_id: UUID) -> dict[str, bytes]:
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        rows = conn.execute(
            "SELECT host, token_ciphertext FROM git_credentials WHERE key_id = %s", (key_id,)
        ).fetchall()
    return {r["host"]: bytes(r["token_ciphertext"]) for r in rows}


def tokens_read(key_id: UUID) -> dict[str, str | None]:
    from common.git.credentials import get_credential_manager

    manager = get_credential_manager()
    return {host: manager.token_for(key_id=key_id, host=host) for host in TOKENS}


def test_the_cli_rotates_secret_key_and_the_old_key_can_then_go(
    set_env: Callable[..., None], api_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from common.git.credentials import TokenCipher

    key_id = principal_of(api_key).key_id
    # Given tokens stored under the old SECRET_KEY
    set_env(SECRET_KEY=OLD, SECRET_KEY_PREVIOUS=None, GIT_TOKENS_KMS_KEY_ID=None)
    store_tokens(api_key, list(TOKENS))
    # When SECRET_KEY changes and the old key is listed as previous, they still decrypt
    set_env(SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=EVERY_KEY)
    assert tokens_read(key_id) == TOKENS
    # When the CLI rotates
    assert main(["git-credentials", "rotate"]) == 0
    out, err = capsys.readouterr()
    assert "re-encrypted" in out and err == ""
    # Then every token is under the new key, and with the old key dropped all decrypt
    set_env(SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=None)
    new_kid = TokenCipher(NEW.encode()).key_id
    assert new_kid is not None
    assert all(b.startswith(b"f1:" + new_kid + b":") for b in stored_blobs(key_id).values())
    assert tokens_read(key_id) == TOKENS
    # And no token was printed
    for text in (out, err):
        assert all(token not in text for token in TOKENS.values())


def test_the_cli_refuses_to_call_it_done_while_a_token_opens_with_no_key(
    set_env: Callable[..., None], api_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(SECRET_KEY=OLD, SECRET_KEY_PREVIOUS=None, GIT_TOKENS_KMS_KEY_ID=None)
    store_tokens(api_key, ["github.com"])
    # When the old key is forgotten before rotating
    set_env(SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=SYNC_TESTS_KEY)
    assert main(["git-credentials", "rotate"]) == 1
    # Then the CLI says which rows it could not open (ids, never tokens) and keeps them
    err = capsys.readouterr().err
    assert "SECRET_KEY_PREVIOUS" in err and TOKENS["github.com"] not in err
    set_env(SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD)
    assert tokens_read(principal_of(api_key).key_id)["github.com"] == TOKENS["github.com"]


def test_kms_envelopes_need_no_secret_key_on_lambda(
    set_env: Callable[..., None],
    api_key: str,
    kms_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_id = principal_of(api_key).key_id
    # Given a token stored under SECRET_KEY before KMS was configured
    set_env(SECRET_KEY=OLD, SECRET_KEY_PREVIOUS=EVERY_KEY, GIT_TOKENS_KMS_KEY_ID=None)
    store_tokens(api_key, ["github.com"])
    # When KMS is configured, a new token is an envelope: the KMS-encrypted data key
    # beside the ciphertext, the token nowhere in it
    set_env(GIT_TOKENS_KMS_KEY_ID=kms_key)
    store_tokens(api_key, ["gitlab.com"])
    blobs = stored_blobs(key_id)
    assert blobs["github.com"].startswith(b"f1:") and blobs["gitlab.com"].startswith(b"k1:")
    assert len(blobs["gitlab.com"].split(b":")[1]) > 40
    assert all(token.encode() not in b"".join(blobs.values()) for token in TOKENS.values())
    # And both decrypt, the old one with SECRET_KEY, the new one through KMS
    assert tokens_read(key_id) == TOKENS
    # When the CLI rotates, every token becomes an envelope
    assert main(["git-credentials", "rotate"]) == 0
    assert all(b.startswith(b"k1:") for b in stored_blobs(key_id).values())
    # Then on Lambda without SECRET_KEY every token still decrypts, through KMS alone
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "jobs-worker")
    set_env(SECRET_KEY=None, SECRET_KEY_PREVIOUS=None)
    assert tokens_read(key_id) == TOKENS
    out, err = capsys.readouterr()
    assert all(token not in out + err for token in TOKENS.values())


def test_a_kms_key_that_refuses_is_a_config_error_naming_the_setting(
    set_env: Callable[..., None], api_key: str, kms_key: str
) -> None:
    from common.errors import ConfigError
    from common.git.credentials import GitCredentialCreate, get_credential_manager

    # Given a KMS key id that does not exist (or that this role may not use)
    set_env(GIT_TOKENS_KMS_KEY_ID="11111111-2222-3333-4444-555555555555")
    body = GitCredentialCreate(host="github.com", token=TOKENS["github.com"])
    # When a token is stored, KMS's refusal is a ConfigError naming the setting
    with pytest.raises(ConfigError, match="GIT_TOKENS_KMS_KEY_ID") as refused:
        get_credential_manager().create(key_id=principal_of(api_key).key_id, body=body)
    assert TOKENS["github.com"] not in str(refused.value)


def test_kms_data_keys_round_trip_with_moto(kms_key: str) -> None:
    from common.git.credentials import KmsDataKeys, TokenCipher

    cipher = TokenCipher(None, kms=KmsDataKeys(kms_key))
    first, second = cipher.encrypt(TOKENS["github.com"]), cipher.encrypt(TOKENS["github.com"])
    # A fresh data key per token: two encryptions of one token share nothing
    assert first.split(b":")[1] != second.split(b":")[1]
    assert cipher.decrypt(first) == cipher.decrypt(second) == TOKENS["github.com"]
    assert cipher.rotate(first) != first
    assert cipher.decrypt(cipher.rotate(first)) == TOKENS["github.com"]
