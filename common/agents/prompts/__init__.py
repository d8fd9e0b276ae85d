"""Prompt templates: one file per task, ``string.Template`` placeholders ($name).

A file holds a system part and a user part, each introduced by a marker line
``<!-- system -->`` / ``<!-- user -->``. Keeping prompts as files lets them be read,
diffed and tuned without touching code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

from common.models.base import Message

_MARKERS = {"<!-- system -->": "system", "<!-- user -->": "user"}


@cache
def _load(name: str) -> dict[str, Template]:
    text = (resources.files(__package__) / f"{name}.md").read_text(encoding="utf-8")
    parts: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        marker = _MARKERS.get(line.strip())
        if marker:
            current = marker
            parts[current] = []
        elif current is not None:
            parts[current].append(line)
    if "user" not in parts:
        raise ValueError(f"prompt {name} has no <!-- user --> part")
    return {role: Template("\n".join(lines).strip("\n")) for role, lines in parts.items()}


def render(name: str, **values: object) -> list[Message]:
    """The system and user messages of prompt ``name`` with ``values`` filled in.

    Raises
    ------
    KeyError
        A placeholder has no value: a bug in the caller, caught by the prompt tests.
    """
    templates = _load(name)
    text = {k: str(v) for k, v in values.items()}
    messages = []
    if "system" in templates:
        messages.append(Message(role="system", content=templates["system"].substitute(text)))
    messages.append(Message(role="user", content=templates["user"].substitute(text)))
    return messages


def text(name: str, **values: object) -> str:
    """The user part alone (for follow-up turns such as repair requests)."""
    return _load(name)["user"].substitute({k: str(v) for k, v in values.items()})
