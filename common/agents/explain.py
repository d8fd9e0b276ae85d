"""Explain a piece of code in plain words."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field, field_validator

from common.errors import ModelOutputInvalid
from common.logs import get_logger
from common.models import Message, ModelClient, Usage

log = get_logger("agents.explain")

MAX_ATTEMPTS = 3

SYSTEM_PROMPT = (
    "You are a senior software engineer. Explain the code you are given to a colleague:"
    " what it does, how it works step by step, its inputs and outputs, and anything"
    " surprising (edge cases, bugs, performance traps). Be precise and concise. Answer"
    " in Markdown. Do not rewrite the code unless asked."
)


class ExplainInput(BaseModel):
    code: str = Field(min_length=1, description="The code to explain.")
    language: str | None = Field(
        None, max_length=40, description="Its language; guessed by the model when absent."
    )
    question: str | None = Field(
        None, max_length=4000, description="A specific question about the code."
    )

    @field_validator("code")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain code, not only whitespace")
        return value


class ExplainOutput(BaseModel):
    explanation: str
    model: str
    usage: Usage
    duration_ms: int


def build_messages(request: ExplainInput) -> list[Message]:
    fence = request.language or ""
    task = request.question or "Explain this code."
    user = f"{task}\n\n```{fence}\n{request.code}\n```"
    return [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=user)]


def explain_code(request: ExplainInput, *, model: ModelClient) -> ExplainOutput:
    """Ask the model to explain ``request.code`` and check that it did.

    An answer is accepted when it is non-empty and complete (the model stopped on
    its own, not at the length limit). Otherwise the model is asked again, up to
    ``MAX_ATTEMPTS`` times.

    Raises
    ------
    ModelOutputInvalid
        No attempt gave an acceptable answer; ``attempts`` says why each failed.
    ModelUnavailable, ModelNotPulled, ModelTimeout
        From the model client.
    """
    started = time.monotonic()
    messages = build_messages(request)
    usage = Usage()
    attempts: list[dict[str, object]] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = model.chat(messages)
        usage = usage + result.usage
        text = result.content.strip()
        if not text:
            problem = "empty answer"
        elif result.done_reason == "length":
            problem = "answer cut off at the length limit"
        else:
            return ExplainOutput(
                explanation=text,
                model=result.model,
                usage=usage,
                duration_ms=round((time.monotonic() - started) * 1000),
            )
        attempts.append({"attempt": attempt, "problem": problem, "chars": len(text)})
        log.info("explain answer rejected", extra={"attempt": attempt, "problem": problem})
        if text:
            messages = [
                *messages,
                Message(role="assistant", content=result.content),
                Message(
                    role="user",
                    content="Your answer was cut off. Give the whole explanation again,"
                    " shorter, so that it fits.",
                ),
            ]
    raise ModelOutputInvalid(
        f"the model gave no usable explanation in {MAX_ATTEMPTS} attempts",
        details={"attempts": attempts},
    )
