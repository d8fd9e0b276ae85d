"""What every model provider returns, whatever server is behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, computed_field

TokenCallback = Callable[[str], None]
# Ollama's ``format``: "json", or a JSON schema the answer must follow.
ResponseFormat = dict[str, Any] | Literal["", "json"] | None


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ChatResult(BaseModel):
    content: str
    model: str
    usage: Usage
    duration_ms: int
    # "stop" when the model finished, "length" when it ran out of room.
    done_reason: str | None = None


class ModelClient(Protocol):
    """A chat model. Implementations translate their transport errors into ``common.errors``."""

    model: str

    def chat(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any] | None = None,
        format: ResponseFormat = None,
        on_token: TokenCallback | None = None,
    ) -> ChatResult: ...

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
