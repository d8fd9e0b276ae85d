"""A key, a token or a password never appears in a log line or a response."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_explain_lambda import CODE, explain


def test_api_key_never_logged_or_returned(
    api_key: str, ollama: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = api_key.split("_", 2)[2]
    capfd.readouterr()

    responses = [
        explain(api_key, {"code": CODE}),
        explain(api_key, {"code": ""}),
        explain(api_key + "x", {"code": CODE}),
        explain(api_key, raw_body="{not json " + api_key),
    ]
    # The code itself may quote a key: the answer must not echo it back either.
    ollama.script("It defines KEY.")
    responses.append(explain(api_key, {"code": f'KEY = "{api_key}"'}))

    out, err = capfd.readouterr()
    assert secret not in out + err
    for _, headers, body in responses:
        assert secret not in str(body) and secret not in str(headers)
    assert f'"api_key_prefix":"{api_key.split("_")[1]}"' in out  # logged, for tracing
