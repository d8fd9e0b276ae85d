import pytest

from common.logs import redact_url, scrub


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("key ao_abcdefgh_Zm9vYmFyYmF6cXV4LXNlY3JldC12YWx1ZQ here", "Zm9vYmFyYmF6cXV4"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("postgresql://app:s3cr3t-pass@db:5432/x", "s3cr3t-pass"),
        ("redis://:redispass@cache:6379/0", "redispass"),
        ("/ws/ide/terminal/1?api_key=ao_abcdefgh_secretsecretsecret", "secretsecretsecret"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123", "abcdefghijklmnopqrstuvwxyz0123"),
        ("figma figd_Xy12abcdefghijklmnop-qrs", "Xy12abcdefghijklmnop-qrs"),
        ("X-API-Key: whatever-it-is", "whatever-it-is"),
    ],
)
def test_scrub_masks_secrets(text: str, secret: str) -> None:
    assert secret not in scrub(text)


def test_scrub_keeps_the_key_prefix_so_lines_still_say_which_key() -> None:
    assert "ao_abcdefgh_***" in scrub("ao_abcdefgh_Zm9vYmFyYmF6cXV4")


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://app:pw@db/x") == "postgresql://app:***@db/x"
    assert redact_url("postgresql://postgres:@/postgres?host=/tmp") == (
        "postgresql://postgres:@/postgres?host=/tmp"
    )
    assert redact_url("http://127.0.0.1:11434") == "http://127.0.0.1:11434"
