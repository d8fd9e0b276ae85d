"""Messy answers that small models really give, through the real client and the Ollama double.

Each one is either recovered within the attempts or refused with the typed error
listing every attempt; each attempt lands in the history collection.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from common.agents.checked import ask_code, ask_json
from common.errors import ModelOutputInvalid
from common.history import find_history, flush_history
from common.models import get_model_client


class Step(BaseModel):
    id: int
    title: str = Field(min_length=1)
    files: list[str]


class Plan(BaseModel):
    steps: list[Step]


GOOD = '{"steps": [{"id": 1, "title": "api", "files": ["app.py"]}]}'


def chat_requests(ollama: Any) -> list[dict[str, Any]]:
    return [r["json"] for r in ollama.requests_to("/api/chat")]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (f"Sure! Here is the plan:\n```json\n{GOOD}\n```\nHope it helps.", "fenced, prose around"),
        (f"The plan is {GOOD} as requested.", "prose around bare JSON"),
        ('{"steps": [{"id": 1, "title": "api", "files": ["app.py",],},],}', "trailing commas"),
        ("{'steps': [{'id': 1, 'title': 'api', 'files': ['app.py']}]}", "single quotes"),
        ('{"steps": [{"id": 1, "title": "api", "files": ["app.py"]', "truncated, stop"),
    ],
)
def test_repairable_json_is_repaired_without_asking_again(
    ollama: Any, answer: str, why: str
) -> None:
    ollama.script(answer)

    checked = ask_json(get_model_client(), [_user("plan it")], Plan, task="plan")

    assert checked.value == Plan.model_validate_json(GOOD), why
    assert len(checked.attempts) == 1
    sent = chat_requests(ollama)[0]
    assert sent["format"]["title"] == "Plan"  # Ollama is asked to follow the schema
    assert sent["options"]["temperature"] == 0


def test_wrong_field_types_are_sent_back_with_the_validation_error(ollama: Any) -> None:
    ollama.script('{"steps": [{"id": "first", "title": "", "files": "app.py"}]}')
    ollama.script(GOOD)

    checked = ask_json(get_model_client(), [_user("plan it")], Plan, task="plan")

    assert checked.value.steps[0].files == ["app.py"]
    assert [a.ok for a in checked.attempts] == [False, True]
    repair = chat_requests(ollama)[1]["messages"][-1]["content"]
    assert "steps.0.id" in repair and "steps.0.title" in repair and '"Plan"' in repair


def test_json_cut_at_the_length_limit_is_not_taken_as_whole(ollama: Any) -> None:
    ollama.script('{"steps": [{"id": 1, "title": "api", "files": ["a', done_reason="length")
    ollama.script(GOOD)

    checked = ask_json(
        get_model_client(), [_user("plan it")], Plan, task="plan", options={"num_predict": 50}
    )

    assert checked.attempts[0].problems == ["the answer was cut off before the JSON ended"]
    assert "cut off" in chat_requests(ollama)[1]["messages"][-1]["content"]


def test_hopeless_json_is_a_502_with_every_attempt(ollama: Any) -> None:
    for _ in range(3):
        ollama.script("I cannot produce a plan for that.")

    with pytest.raises(ModelOutputInvalid) as caught:
        ask_json(get_model_client(), [_user("plan it")], Plan, task="plan", max_attempts=3)

    assert caught.value.status == 502 and caught.value.code == "model_output_invalid"
    attempts = caught.value.details["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["problems"] for a in attempts)
    assert attempts[0]["answer_excerpt"] == "I cannot produce a plan for that."


def test_code_with_a_syntax_error_is_sent_back_and_fixed(ollama: Any) -> None:
    ollama.script("```python\ndef area(r)\n    return 3.14159 * r * r\n```")
    ollama.script("```python\ndef area(r):\n    return 3.14159 * r * r\n```")

    checked = ask_code(get_model_client(), [_user("area")], task="generate", language="python")

    assert checked.value.code.startswith("def area(r):")
    assert checked.attempts[0].problems == ["parse: line 1: expected ':'"]
    assert {c["name"] for c in checked.value.checks} == {"parse", "lint"}


def test_code_that_lints_badly_is_sent_back(ollama: Any) -> None:
    ollama.script("```python\ndef total(xs):\n    return sum(items)\n```")
    ollama.script("```python\ndef total(xs):\n    return sum(xs)\n```")

    checked = ask_code(get_model_client(), [_user("total")], task="generate", language="python")

    assert "F821" in checked.attempts[0].problems[0]
    assert checked.value.code == "def total(xs):\n    return sum(xs)\n"


def test_an_empty_answer_is_asked_again(ollama: Any) -> None:
    ollama.script("")
    ollama.script("```js\nexport const add = (a, b) => a + b;\n```")

    checked = ask_code(get_model_client(), [_user("add")], task="generate", language="javascript")

    assert checked.attempts[0].problems == ["the answer had no code"]
    assert checked.value.language == "javascript"


def test_a_length_stop_in_code_is_refused_after_the_attempts(ollama: Any) -> None:
    for _ in range(2):
        ollama.script("```python\ndef f():\n    return [", done_reason="length")

    with pytest.raises(ModelOutputInvalid) as caught:
        ask_code(
            get_model_client(),
            [_user("f")],
            task="generate",
            language="python",
            max_attempts=2,
            options={"num_predict": 10},
        )

    problems = [a["problems"] for a in caught.value.details["attempts"]]
    assert problems == [["the answer was cut off before the code ended"]] * 2


def test_every_attempt_is_recorded_in_history(ollama: Any) -> None:
    from common.context import begin_request, current_request, end_request

    token = begin_request("req-history-test")
    info = current_request()
    assert info is not None
    info.key_id = "key-history-test"
    try:
        ollama.script("no json here")
        ollama.script(GOOD)
        ask_json(get_model_client(), [_user("plan it")], Plan, task="plan")
    finally:
        end_request(token)
    assert flush_history(timeout_s=10)

    (entry,) = find_history(key_id="key-history-test", request_id="req-history-test")
    assert entry["task"] == "plan" and entry["ok"] is True
    assert entry["model"] == "qwen2.5-coder:7b" and entry["provider"] == "ollama"
    first, second = entry["attempts"]
    assert first["ok"] is False and first["raw"] == "no json here" and first["problems"]
    assert second["ok"] is True and len(second["prompt_digest"]) == 16
    assert first["prompt_digest"] != second["prompt_digest"]
    assert first["duration_ms"] >= 0


def _user(text: str) -> Any:
    from common.models import Message

    return Message(role="user", content=text)
