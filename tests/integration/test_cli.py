"""python -m common.cli keys ... against the run's PostgreSQL."""

import json

import pytest

from common.cli import main


def test_create_list_revoke(stores: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--name", "cli-test", "--user", "bob"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("ao_") and len(key.splitlines()) == 1
    prefix = key.split("_")[1]
    assert "shown only this once" in err

    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    mine = next(k for k in listed if k["prefix"] == prefix)
    assert mine["name"] == "cli-test" and mine["user"] == "bob" and mine["revoked_at"] is None
    assert key.split("_", 2)[2] not in json.dumps(listed)

    assert main(["keys", "revoke", prefix]) == 0
    assert f"revoked {prefix}" in capsys.readouterr().out
    assert main(["keys", "list"]) == 0
    table = capsys.readouterr().out
    assert any(line.startswith(prefix) and "revoked" in line for line in table.splitlines())


def test_revoking_an_unknown_prefix_fails_clearly(
    stores: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "revoke", "zzzz9999"]) == 1
    assert "no API key with prefix zzzz9999" in capsys.readouterr().err


def test_malformed_setting_is_one_line_and_exit_2(
    set_env: object, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(RATE_LIMIT_PER_MINUTE="many")  # type: ignore[operator]

    assert main(["keys", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid configuration: RATE_LIMIT_PER_MINUTE")
    assert len(err.splitlines()) == 1
