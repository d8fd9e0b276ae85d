"""Rotating the key of stored Git tokens, on in-memory stores: MultiFernet reads the old
keys, rotate_tokens re-encrypts every token, and nothing needs the old key afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from common.config import Settings
from common.errors import ConfigError
from common.git.credentials import (
    TokenCipher,
    previous_secret_keys,
    rotate_tokens,
    token_cipher,
)

TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123a1b2"
OLD, NEW = b"old-" + b"o" * 40, b"new-" + b"n" * 40


class Blobs:
    """The ciphertext column: id -> blob."""

    def __init__(self, blobs: dict[UUID, bytes]) -> None:
        self.blobs = blobs
        self.before_write: list[UUID] = []  # ids whose owner replaces them mid-rotation

    def ciphertexts(self) -> Sequence[tuple[UUID, bytes]]:
        return list(self.blobs.items())

    def replace_ciphertext(self, credential_id: UUID, *, old: bytes, new: bytes) -> bool:
        if credential_id in self.before_write:
            self.blobs[credential_id] = b"replaced by its owner"
        if self.blobs[credential_id] != old:
            return False
        self.blobs[credential_id] = new
        return True


def test_old_ciphertexts_still_decrypt_with_the_old_key_listed() -> None:
    # Given a token encrypted under the old key
    blob = TokenCipher(OLD).encrypt(TOKEN)
    # When the key changed and the old one is listed as previous, it still decrypts
    assert TokenCipher(NEW, previous=[OLD]).decrypt(blob) == TOKEN
    # And without it, the error names the setting (and not the token)
    with pytest.raises(ConfigError, match="SECRET_KEY_PREVIOUS") as error:
        TokenCipher(NEW).decrypt(blob)
    assert TOKEN not in str(error.value)


def test_rotation_reencrypts_every_token_and_the_old_key_can_go() -> None:
    old = TokenCipher(OLD)
    ids = [uuid4(), uuid4()]
    store = Blobs({ids[0]: old.encrypt(TOKEN), ids[1]: old.encrypt(TOKEN + "x")})
    # When rotating with the new key current and the old one previous
    result = rotate_tokens(store=store, cipher=TokenCipher(NEW, previous=[OLD]))
    assert (result.rotated, result.changed_meanwhile, result.failed) == (2, 0, [])
    # Then the new key alone opens every token, and the old one none
    new_only = TokenCipher(NEW)
    assert [new_only.decrypt(store.blobs[i]) for i in ids] == [TOKEN, TOKEN + "x"]
    for blob in store.blobs.values():
        assert blob.startswith(b"f1:" + new_only.key_id + b":")  # type: ignore[operator]
        with pytest.raises(ConfigError):
            old.decrypt(blob)


def test_rotation_leaves_a_token_replaced_meanwhile_and_reports_what_it_cannot_open() -> None:
    cipher = TokenCipher(NEW, previous=[OLD])
    replaced, unknown, fine = uuid4(), uuid4(), uuid4()
    store = Blobs(
        {
            replaced: TokenCipher(OLD).encrypt(TOKEN),
            unknown: TokenCipher(b"lost-" + b"l" * 40).encrypt(TOKEN),
            fine: TokenCipher(OLD).encrypt(TOKEN),
        }
    )
    store.before_write.append(replaced)
    lost = store.blobs[unknown]
    result = rotate_tokens(store=store, cipher=cipher)
    assert (result.rotated, result.changed_meanwhile, result.failed) == (1, 1, [unknown])
    # The owner's write wins, and what no key opens is left as it was
    assert store.blobs[replaced] == b"replaced by its owner"
    assert store.blobs[unknown] == lost


def test_secret_key_previous_is_a_comma_list(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        DATA_DIR=tmp_path,
        SECRET_KEY=NEW.decode(),
        SECRET_KEY_PREVIOUS=f" {OLD.decode()} ,older-key-0123456789,",
    )
    assert previous_secret_keys(settings) == [OLD, b"older-key-0123456789"]
    older = TokenCipher(b"older-key-0123456789").encrypt(TOKEN)
    assert token_cipher(settings).decrypt(older) == TOKEN


def test_a_corrupt_or_foreign_blob_is_a_config_error() -> None:
    cipher = TokenCipher(NEW)
    for blob in (b"garbage", b"x9:abc:def", b"k1:abc:def"):
        with pytest.raises(ConfigError):
            cipher.decrypt(blob)


def test_neither_a_secret_key_nor_kms_is_refused() -> None:
    with pytest.raises(ConfigError, match="GIT_TOKENS_KMS_KEY_ID"):
        TokenCipher(None)
