"""A ModelClient that returns scripted answers in order, for tests with no server."""

from __future__ import annotations

from typing import Any

from common.models import ChatResult, Embeddings, Message, Usage


class ScriptedModel:
    """Each answer is a string (stopped normally) or ``(content, done_reason)``."""

    provider = "scripted"
    model = "scripted"

    def __init__(self, *answers: tuple[str, str] | str) -> None:
        self.answers = [(a, "stop") if isinstance(a, str) else a for a in answers]
        self.calls: list[dict[str, Any]] = []

    def chat(self, messages: list[Message], **kwargs: Any) -> ChatResult:
        self.calls.append({"messages": messages, **kwargs})
        content, reason = self.answers.pop(0)
        return ChatResult(
            content=content,
            model=self.model,
            provider=self.provider,
            usage=Usage(prompt_tokens=10, completion_tokens=len(content)),
            duration_ms=1,
            done_reason=reason,
        )

    def embed(self, texts: list[str]) -> Embeddings:
        raise NotImplementedError

    def context_length(self) -> int:
        return 8192

    def health(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass
