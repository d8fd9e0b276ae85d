"""The Universal agent: the one entry for a single code task.

Explain, fix, write tests, optimize, analyze: each builds its prompt from a template
file, asks through the checked-output mechanism, and returns a checked value. The
sandbox (running the code and its tests) joins in the code-actions work; here every
code answer is at least parsed and linted.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from common.agents import prompts
from common.agents.checked import Checked, CodeAnswer, CodeCheck, ask_code, ask_json, ask_text
from common.auth import Principal
from common.code.languages import detect_language
from common.memory.models import ProjectPath
from common.models.base import Message, ModelClient, TokenCallback, Usage


class SourceRef(BaseModel):
    path: str
    start_line: int
    end_line: int


class ExplainInput(BaseModel):
    code: str | None = Field(
        None, min_length=1, description="The code to explain (or `project_id` and `path`)."
    )
    path: ProjectPath | None = Field(
        None, description="With `project_id`: the stored file to explain, instead of `code`."
    )
    language: str | None = Field(
        None, max_length=40, description="Its language; detected when absent."
    )
    question: str | None = Field(
        None, max_length=4000, description="A specific question about the code."
    )
    project_id: UUID | None = Field(
        None, description="A project whose indexed files give the model context."
    )

    @field_validator("code")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must contain code, not only whitespace")
        return value


class ExplainOutput(BaseModel):
    explanation: str
    model: str
    usage: Usage
    duration_ms: int
    cached: bool = False
    attempts: int = 1
    language: str | None = None
    # Project files given to the model as context, cited in the explanation.
    sources: list[SourceRef] = []
    revision: str | None = Field(
        None, description="With `project_id`: the revision of the index the context came from."
    )


class ContextSnippet(BaseModel):
    path: str
    start_line: int
    end_line: int
    text: str


def explain(
    request: ExplainInput,
    *,
    model: ModelClient,
    context: list[ContextSnippet] | None = None,
    max_attempts: int = 3,
    on_token: TokenCallback | None = None,
) -> ExplainOutput:
    """Explain ``request.code``; with ``context``, ground it in those project files.

    Raises
    ------
    ModelOutputInvalid
        No complete, non-empty explanation within ``max_attempts``.
    """
    # explain_request reads a project file into `code` first.
    assert request.code is not None
    language = detect_language(request.code, hint=request.language)
    context = context or []
    messages = prompts.render(
        "explain",
        context="",
        task=request.question or "Explain this code.",
        language=language or "",
        code=request.code,
    )
    if context:
        snippets = "\n\n".join(
            f"`{c.path}` lines {c.start_line}-{c.end_line}:\n```\n{c.text}\n```" for c in context
        )
        # Context goes in its own message so that, when the window is short, it is what
        # gets cut (oldest first) and never the code asked about.
        messages.insert(
            1,
            Message(
                role="user",
                content=prompts.text("explain_context", snippets=snippets),
                context=True,
            ),
        )
    checked = ask_text(
        model, messages, task="explain", max_attempts=max_attempts, on_token=on_token
    )
    explanation = checked.value
    sources = (
        [SourceRef(path=c.path, start_line=c.start_line, end_line=c.end_line) for c in context]
        if context and not checked.dropped_context
        else []
    )
    uncited = [s for s in sources if s.path not in explanation]
    if sources and len(uncited) == len(sources):
        # The model used the files but named none: say which ones it was given.
        lines = "\n".join(f"- `{s.path}` (lines {s.start_line}-{s.end_line})" for s in sources)
        explanation += f"\n\nSources:\n{lines}"
    return ExplainOutput(
        explanation=explanation,
        model=checked.model,
        usage=checked.usage,
        duration_ms=checked.duration_ms,
        cached=checked.cached,
        attempts=len(checked.attempts),
        language=language,
        sources=sources,
    )


def explain_request(
    request: ExplainInput,
    *,
    principal: Principal,
    model: ModelClient,
    max_attempts: int = 3,
    on_token: TokenCallback | None = None,
) -> ExplainOutput:
    """/api/explain: with ``project_id``, the project's most relevant indexed files
    (semantic memory) are given to the model as context and cited in the answer.

    Raises
    ------
    NotFound
        ``project_id`` is not a project of this key.
    """
    context: list[ContextSnippet] = []
    revision = None
    project_id = request.project_id
    if request.code is None and (project_id is None or request.path is None):
        from common.errors import InvalidInput

        raise InvalidInput(
            "give `code`, or `project_id` and `path` (a file of the project)",
            details={"fields": [{"path": "body.code", "type": "missing", "message": "required"}]},
        )
    if project_id is not None:
        from common.memory.context import project_context_at

        if request.code is None and request.path is not None:
            from common.projects import load_project_file

            request = request.model_copy(
                update={
                    "code": load_project_file(
                        project_id=project_id,
                        owner_key_id=principal.key_id,
                        path=request.path,
                    )
                }
            )
        context, revision = project_context_at(
            project_id=project_id,
            owner_key_id=principal.key_id,
            query=f"{request.question or ''}\n{request.code}",
        )
        # The file itself is in the prompt already: its chunks would only repeat it.
        context = [c for c in context if c.path != request.path]
    answer = explain(
        request, model=model, context=context, max_attempts=max_attempts, on_token=on_token
    )
    answer.revision = revision
    return answer


def fix(
    code: str,
    *,
    model: ModelClient,
    language: str | None = None,
    problem: str = "",
    instructions: str = "",
    context: str = "",
    extra_checks: CodeCheck | None = None,
    max_attempts: int = 3,
    on_token: TokenCallback | None = None,
) -> Checked[CodeAnswer]:
    """Corrected code for ``problem`` (an error message, failing tests), checked.

    ``context`` (other files, such as the failing tests) goes in its own message, cut
    first when the window is short; ``extra_checks`` (running the tests) must pass too.
    """
    language = detect_language(code, hint=language)
    messages = prompts.render(
        "fix",
        language=language or "",
        code=code,
        instructions=instructions,
        problem=problem or "Find and fix the bug.",
    )
    return ask_code(
        model,
        _with_context(messages, context),
        task="fix",
        language=language,
        max_attempts=max_attempts,
        extra_checks=extra_checks,
        on_token=on_token,
    )


def _with_context(messages: list[Message], context: str) -> list[Message]:
    if not context:
        return messages
    note = Message(role="user", content=prompts.text("files_context", files=context), context=True)
    return [messages[0], note, *messages[1:]] if messages[0].role == "system" else [note, *messages]


TEST_FRAMEWORKS = {"python": "pytest", "javascript": "node:test", "typescript": "node:test"}


def write_tests(
    code: str,
    *,
    model: ModelClient,
    language: str | None = None,
    module: str = "solution",
    instructions: str = "",
    context: str = "",
    extra_checks: CodeCheck | None = None,
    max_attempts: int = 3,
    on_token: TokenCallback | None = None,
) -> Checked[CodeAnswer]:
    """Unit tests for ``code`` (pytest for Python, node:test for JavaScript), checked."""
    language = detect_language(code, hint=language)
    messages = prompts.render(
        "write_tests",
        language=language or "",
        code=code,
        module=module,
        framework=TEST_FRAMEWORKS.get(language or "", "the usual test framework"),
        instructions=instructions,
    )
    return ask_code(
        model,
        _with_context(messages, context),
        task="test",
        language=language,
        max_attempts=max_attempts,
        extra_checks=extra_checks,
        on_token=on_token,
    )


def optimize(
    code: str,
    *,
    model: ModelClient,
    language: str | None = None,
    goal: Literal["performance", "readability", "performance and readability"] = (
        "performance and readability"
    ),
    instructions: str = "",
    context: str = "",
    extra_checks: CodeCheck | None = None,
    max_attempts: int = 3,
    on_token: TokenCallback | None = None,
) -> Checked[CodeAnswer]:
    """An improved version of ``code`` with the same interface, checked."""
    language = detect_language(code, hint=language)
    messages = prompts.render(
        "optimize", language=language or "", code=code, goal=goal, instructions=instructions
    )
    return ask_code(
        model,
        _with_context(messages, context),
        task="optimize",
        language=language,
        max_attempts=max_attempts,
        extra_checks=extra_checks,
        on_token=on_token,
    )


class Finding(BaseModel):
    line: int | None = Field(None, ge=1)
    severity: Literal["critical", "high", "medium", "low", "info"]
    title: str = Field(min_length=1)
    recommendation: str = Field(min_length=1)


class Review(BaseModel):
    summary: str = Field(min_length=1)
    findings: list[Finding]


def analyze(
    code: str,
    *,
    model: ModelClient,
    language: str | None = None,
    metrics: dict[str, Any] | None = None,
    instructions: str = "",
    max_attempts: int = 3,
) -> Checked[Review]:
    """A prioritised review of ``code`` as validated JSON."""
    language = detect_language(code, hint=language)
    messages = prompts.render(
        "analyze",
        language=language or "",
        code=code,
        metrics=metrics or "none",
        instructions=instructions,
    )
    checked = ask_json(model, messages, Review, task="analyze", max_attempts=max_attempts)
    order = ["critical", "high", "medium", "low", "info"]
    checked.value.findings.sort(key=lambda f: order.index(f.severity))
    return checked
