"""The Universal agent over a scripted model: prompts, retries, checks, citations."""

from __future__ import annotations

from typing import Any

import pytest

from common.agents import universal
from common.agents.universal import ContextSnippet, ExplainInput
from common.errors import ModelOutputInvalid
from tests.fakes.scripted_model import ScriptedModel


def test_a_complete_answer_is_returned_with_usage_and_detected_language() -> None:
    model = ScriptedModel("  It adds two numbers.  ")

    out = universal.explain(ExplainInput(code="def f(a, b):\n    return a + b\n"), model=model)

    assert out.explanation == "It adds two numbers."
    assert out.language == "python"
    assert out.usage.total_tokens == 10 + len("  It adds two numbers.  ")
    prompt = model.calls[0]["messages"][-1].content
    assert "```python\ndef f(a, b):\n    return a + b\n\n```" in prompt
    assert model.calls[0]["options"] == {"temperature": 0}


def test_the_question_replaces_the_default_task() -> None:
    model = ScriptedModel("Because of recursion.")

    universal.explain(ExplainInput(code="x", question="Why is it slow?"), model=model)

    assert model.calls[0]["messages"][-1].content.startswith("Why is it slow?")


def test_empty_then_cut_off_answers_are_retried_and_usage_adds_up(
    history_entries: list[dict[str, Any]],
) -> None:
    model = ScriptedModel("", ("It starts to", "length"), "Whole answer.")

    out = universal.explain(ExplainInput(code="x = 1"), model=model)

    assert out.explanation == "Whole answer."
    assert out.attempts == 3
    assert out.usage.prompt_tokens == 30
    # The cut-off answer is shown back to the model, asking for a shorter one.
    assert model.calls[2]["messages"][-2].content == "It starts to"
    assert "cut off" in model.calls[2]["messages"][-1].content
    (entry,) = history_entries
    assert entry["task"] == "explain" and entry["ok"] is True
    assert [a["ok"] for a in entry["attempts"]] == [False, False, True]
    assert entry["attempts"][0]["problems"] == ["the answer was empty"]


def test_no_usable_answer_is_a_502_listing_each_attempt(
    history_entries: list[dict[str, Any]],
) -> None:
    model = ScriptedModel("", "", "")

    with pytest.raises(ModelOutputInvalid) as caught:
        universal.explain(ExplainInput(code="x = 1"), model=model, max_attempts=3)

    assert caught.value.status == 502
    attempts = caught.value.details["attempts"]
    assert [a["problems"] for a in attempts] == [["the answer was empty"]] * 3
    assert history_entries[0]["ok"] is False


def test_context_is_sent_as_droppable_context_and_cited() -> None:
    model = ScriptedModel("It calls the helper.")
    snippet = ContextSnippet(path="src/util.py", start_line=3, end_line=9, text="def helper(): ...")

    out = universal.explain(ExplainInput(code="helper()"), model=model, context=[snippet])

    sent = model.calls[0]["messages"]
    assert [m.context for m in sent] == [False, True, False]
    assert "src/util.py" in sent[1].content
    assert out.sources[0].path == "src/util.py"
    assert "Sources:\n- `src/util.py` (lines 3-9)" in out.explanation


def test_a_model_that_cites_its_sources_is_left_alone() -> None:
    model = ScriptedModel("As `src/util.py` shows, it calls the helper.")
    snippet = ContextSnippet(path="src/util.py", start_line=1, end_line=2, text="x")

    out = universal.explain(ExplainInput(code="helper()"), model=model, context=[snippet])

    assert "Sources:" not in out.explanation


@pytest.mark.parametrize("code", ["", "   \n\t"])
def test_blank_code_is_invalid_input(code: str) -> None:
    with pytest.raises(ValueError):
        ExplainInput(code=code)


def test_fix_returns_code_that_parses_after_a_broken_first_answer() -> None:
    model = ScriptedModel(
        "```python\ndef add(a, b)\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a + b\n```\nAdded the colon.",
    )

    checked = universal.fix("def add(a, b)\n    return a - b\n", model=model, problem="wrong sum")

    assert checked.value.code == "def add(a, b):\n    return a + b\n"
    assert [a.ok for a in checked.attempts] == [False, True]
    repair = model.calls[1]["messages"][-1].content
    assert "parse: line 1" in repair and "```python" in repair


def test_analyze_returns_validated_findings_sorted_by_severity() -> None:
    model = ScriptedModel(
        'Here is my review:\n```json\n{"summary": "ok", "findings": ['
        '{"line": 2, "severity": "low", "title": "naming", "recommendation": "rename"},'
        '{"line": 1, "severity": "critical", "title": "eval", "recommendation": "drop eval"},'
        "]}\n```"
    )

    checked = universal.analyze("eval(x)\nY = 1\n", model=model)

    assert [f.severity for f in checked.value.findings] == ["critical", "low"]
    assert model.calls[0]["format"]["title"] == "Review"
