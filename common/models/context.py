"""Fitting a prompt into a model's context window.

Token counts are estimated, not counted: providers do not share their tokenizer.
The estimate errs high (code tokenizes denser than prose), which costs a little
window and never cuts a prompt that would have fit.
"""

from __future__ import annotations

import math

from common.models.base import Message

CHARS_PER_TOKEN = 3.2
# Per-message framing (role markers, separators) in chat templates.
TOKENS_PER_MESSAGE = 8
# Ollama's own default window: never ask for less than users get today.
MIN_NUM_CTX = 4096
DEFAULT_ANSWER_TOKENS = 2048


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_messages(messages: list[Message]) -> int:
    return sum(estimate_tokens(m.content) + TOKENS_PER_MESSAGE for m in messages)


def choose_num_ctx(prompt_tokens: int, answer_tokens: int, limit: int) -> int:
    """The window to ask for: prompt plus room for the answer, in 1024-token steps.

    Small steps keep Ollama from reloading the model for every request size while
    not asking for the model's whole (memory-hungry) window for a short prompt.
    """
    wanted = max(MIN_NUM_CTX, prompt_tokens + answer_tokens)
    stepped = math.ceil(wanted / 1024) * 1024
    return min(stepped, limit)


def fit_messages(
    messages: list[Message], *, limit: int, answer_tokens: int
) -> tuple[list[Message], int]:
    """Drop context messages, oldest first, until the prompt leaves room for the answer.

    Returns
    -------
    tuple[list[Message], int]
        The messages to send and how many context messages were dropped. When even
        without any context the prompt does not fit, it is sent as is (the provider's
        own truncation is then detected from its token counts and reported).
    """
    budget = limit - answer_tokens
    kept = list(messages)
    dropped = 0
    while estimate_messages(kept) > budget:
        index = next((i for i, m in enumerate(kept) if m.context), None)
        if index is None:
            break
        del kept[index]
        dropped += 1
    return kept, dropped
