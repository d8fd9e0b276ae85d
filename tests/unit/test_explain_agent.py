from typing import Any

import pytest

from common.agents.explain import MAX_ATTEMPTS, ExplainInput, explain_code
from common.errors import ModelOutputInvalid
from common.models import ChatResult, Message, Usage


class ScriptedModel:
    """A ModelClient that returns the scripted answers in order."""

    model = "scripted"

    def __init__(self, *answers: tuple[str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[list[Message]] = []

    def chat(self, messages: list[Message], **_: Any) -> ChatResult:
        self.calls.append(messages)
        content, reason = self.answers.pop(0)
        return ChatResult(
            content=content,
            model=self.model,
            usage=Usage(prompt_tokens=10, completion_tokens=len(content)),
            duration_ms=1,
            done_reason=reason,
        )

    def health(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def test_a_complete_answer_is_returned_with_usage() -> None:
    model = ScriptedModel(("  It adds two numbers.  ", "stop"))

    out = explain_code(
        ExplainInput(code="def f(a, b): return a + b", language="python"), model=model
    )

    assert out.explanation == "It adds two numbers."
    assert out.usage.prompt_tokens == 10
    assert out.usage.total_tokens == 10 + len("  It adds two numbers.  ")
    prompt = model.calls[0][-1].content
    assert "```python\ndef f(a, b): return a + b\n```" in prompt


def test_the_question_replaces_the_default_task() -> None:
    model = ScriptedModel(("Because of recursion.", "stop"))

    explain_code(ExplainInput(code="x", question="Why is it slow?"), model=model)

    assert model.calls[0][-1].content.startswith("Why is it slow?")


def test_empty_then_cut_off_answers_are_retried_and_usage_adds_up() -> None:
    model = ScriptedModel(("", "stop"), ("It starts to", "length"), ("Whole answer.", "stop"))

    out = explain_code(ExplainInput(code="x = 1"), model=model)

    assert out.explanation == "Whole answer."
    assert len(model.calls) == 3
    assert out.usage.prompt_tokens == 30
    # The cut-off answer is shown back to the model with the reason.
    assert model.calls[2][-2].content == "It starts to"


def test_no_usable_answer_is_a_502_listing_each_attempt() -> None:
    model = ScriptedModel(*[("", "stop")] * MAX_ATTEMPTS)

    with pytest.raises(ModelOutputInvalid) as caught:
        explain_code(ExplainInput(code="x = 1"), model=model)

    assert caught.value.status == 502
    attempts = caught.value.details["attempts"]
    assert [a["problem"] for a in attempts] == ["empty answer"] * MAX_ATTEMPTS


@pytest.mark.parametrize("code", ["", "   \n\t"])
def test_blank_code_is_invalid_input(code: str) -> None:
    with pytest.raises(ValueError):
        ExplainInput(code=code)
