"""What every model provider offers and returns, whatever server is behind it."""

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
    # Context (retrieved files, earlier turns) may be cut when the prompt does not fit
    # the model's window, oldest first; the task and the system prompt never are.
    context: bool = Field(False, exclude=True)


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
    provider: str = "ollama"
    # "stop" when the model finished, "length" when it ran out of room.
    done_reason: str | None = None
    # The context window asked for (Ollama's num_ctx), when the provider takes one.
    num_ctx: int | None = None
    # The server evaluated far fewer prompt tokens than were sent: it cut the prompt.
    prompt_truncated: bool = False
    # Context messages dropped before sending because the prompt did not fit.
    dropped_context: int = 0
    # Answered from the L0 cache, not by the model.
    cached: bool = False

    @property
    def complete(self) -> bool:
        return self.done_reason != "length" and not self.prompt_truncated


class Embeddings(BaseModel):
    vectors: list[list[float]]
    model: str
    duration_ms: int
    prompt_tokens: int = 0


class ModelClient(Protocol):
    """A chat model (and its embedding model) behind one provider.

    Implementations translate their transport errors into ``common.errors``.
    """

    provider: str
    model: str

    def chat(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any] | None = None,
        format: ResponseFormat = None,
        on_token: TokenCallback | None = None,
    ) -> ChatResult: ...

    def embed(self, texts: list[str]) -> Embeddings: ...

    def context_length(self) -> int: ...

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
