"""Checked model output: the one mechanism every agent uses.

A small local model's messy answer is the normal case. Each ``ask_*`` call asks,
checks, repairs what can be repaired without the model, and otherwise asks again
with the exact problem, up to ``MAX_ATTEMPTS`` times; then it raises
:class:`~common.errors.ModelOutputInvalid` listing every attempt. Every attempt is
recorded in the history collection.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from common.agents import prompts
from common.code.checks import CheckResult, check_code
from common.code.extract import extract_code
from common.errors import ModelOutputInvalid
from common.history import MAX_RAW_CHARS, record_history
from common.logs import get_logger
from common.models.base import ChatResult, Message, ModelClient, TokenCallback, Usage

log = get_logger("agents.checked")

T = TypeVar("T", bound=BaseModel)
V = TypeVar("V")

# Deterministic by default: a code answer should not be a dice roll, and only
# deterministic answers are cached.
DEFAULT_OPTIONS: dict[str, Any] = {"temperature": 0}


class Attempt(BaseModel):
    number: int
    prompt_digest: str
    ok: bool
    problems: list[str]
    checks: list[dict[str, Any]] = []
    duration_ms: int
    done_reason: str | None = None
    cached: bool = False
    raw: str


class Checked(BaseModel, Generic[V]):
    """A value that passed its checks, and how it got there."""

    value: V
    attempts: list[Attempt]
    usage: Usage
    model: str
    provider: str
    cached: bool
    duration_ms: int
    dropped_context: int = 0


class CodeAnswer(BaseModel):
    code: str
    language: str | None
    path: str | None = None
    checks: list[dict[str, Any]] = []


def digest(messages: list[Message]) -> str:
    payload = json.dumps([[m.role, m.content] for m in messages])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -- JSON --------------------------------------------------------------------

_FENCED_JSON = re.compile(r"```(?:json|JSON)?\s*\n(.*?)(?:```|\Z)", re.S)


def parse_json_answer(raw: str, schema: type[T]) -> tuple[T | None, list[str], bool]:
    """Validate ``raw`` as ``schema``, repairing it first if needed.

    Returns
    -------
    tuple[T | None, list[str], bool]
        The value (None when unusable), the problems found, and whether a repair
        (not the model) made it usable.
    """
    text = raw.strip()
    if not text:
        return None, ["the answer was empty"], False
    try:
        return schema.model_validate_json(text), [], False
    except ValidationError as exc:
        first_problems = _validation_problems(exc)
    candidates = [m.group(1) for m in _FENCED_JSON.finditer(text)]
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        candidates.append(text[start:])
    candidates.append(text)
    import json_repair

    for candidate in candidates:
        try:
            repaired = json_repair.loads(candidate)
        except Exception:  # json_repair raises assorted errors on hopeless input
            continue
        if repaired in ("", None, [], {}) and candidate.strip() not in ("{}", "[]"):
            continue
        try:
            return schema.model_validate(repaired), [], True
        except ValidationError as exc:
            first_problems = _validation_problems(exc)
    return None, first_problems, False


def _validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "the answer"
        if err["type"] == "json_invalid":
            problems.append(f"it is not valid JSON ({err['msg']})")
        else:
            problems.append(f"{where}: {err['msg']}")
    return problems


def ask_json(
    model: ModelClient,
    messages: list[Message],
    schema: type[T],
    *,
    task: str,
    max_attempts: int = 3,
    options: dict[str, Any] | None = None,
    on_token: TokenCallback | None = None,
    accept: Callable[[T], list[str]] | None = None,
) -> Checked[T]:
    """Ask for a JSON answer that validates as ``schema`` (and passes ``accept``, the
    domain's own check: the problems it finds are said back like validation errors).

    The model is asked with ``format`` set to the schema (Ollama constrains its
    output to it); the answer is validated, repaired when malformed (fences, prose
    around it, trailing commas, single quotes, truncation) and otherwise asked for
    again with the validation errors.

    Raises
    ------
    ModelOutputInvalid
        No attempt gave a valid answer; ``attempts`` lists each one's problems.
    """
    json_schema = schema.model_json_schema()
    schema_text = json.dumps(json_schema, indent=None)

    def check(result: ChatResult) -> tuple[T | None, list[str], list[CheckResult]]:
        value, problems, repaired = parse_json_answer(result.content, schema)
        if value is not None and result.done_reason == "length" and repaired:
            # Repair can close a cut-off object, but what was cut is gone: not whole.
            return None, ["the answer was cut off before the JSON ended"], []
        if value is not None and accept is not None:
            refused = accept(value)
            if refused:
                return None, refused, []
        return value, problems, []

    def follow_up(result: ChatResult, problems: list[str]) -> list[Message]:
        return [
            Message(
                role="user",
                content=prompts.text(
                    "repair_json", problems="; ".join(problems), schema=schema_text
                ),
            )
        ]

    return _ask(
        model,
        messages,
        task=task,
        max_attempts=max_attempts,
        options=options,
        format=json_schema,
        on_token=on_token,
        check=check,
        follow_up=follow_up,
    )


# -- code --------------------------------------------------------------------

CodeCheck = Callable[[str], list[CheckResult]]


def ask_code(
    model: ModelClient,
    messages: list[Message],
    *,
    task: str,
    language: str | None,
    max_attempts: int = 3,
    extra_checks: CodeCheck | None = None,
    options: dict[str, Any] | None = None,
    on_token: TokenCallback | None = None,
) -> Checked[CodeAnswer]:
    """Ask for code that parses (and lints, and passes ``extra_checks``).

    The code is the longest fenced block in ``language`` (or the whole answer when
    it has no fence). A failed check is sent back with its message.

    Raises
    ------
    ModelOutputInvalid
        No attempt gave code that passed; ``attempts`` lists each failed check.
    """

    def check(result: ChatResult) -> tuple[CodeAnswer | None, list[str], list[CheckResult]]:
        block = extract_code(result.content, language=language)
        if block is None or not block.code.strip():
            return None, ["the answer had no code"], []
        if result.done_reason == "length":
            return None, ["the answer was cut off before the code ended"], []
        lang = language or block.language
        results = check_code(block.code, lang)
        if extra_checks is not None and all(r.ok for r in results):
            results += extra_checks(block.code)
        failed = [r for r in results if not r.ok]
        if failed:
            return None, [f"{r.name}: {r.message}" for r in failed], results
        answer = CodeAnswer(
            code=block.code,
            language=lang,
            path=block.path,
            checks=[r.to_dict() for r in results],
        )
        return answer, [], results

    def follow_up(result: ChatResult, problems: list[str]) -> list[Message]:
        return [
            Message(
                role="user",
                content=prompts.text(
                    "repair_code",
                    problems="\n".join(f"- {p}" for p in problems),
                    language=language or "",
                ),
            )
        ]

    return _ask(
        model,
        messages,
        task=task,
        max_attempts=max_attempts,
        options=options,
        format=None,
        on_token=on_token,
        check=check,
        follow_up=follow_up,
    )


# -- prose -------------------------------------------------------------------


def ask_text(
    model: ModelClient,
    messages: list[Message],
    *,
    task: str,
    max_attempts: int = 3,
    options: dict[str, Any] | None = None,
    on_token: TokenCallback | None = None,
    accept: Callable[[str], tuple[str | None, list[str]]] | None = None,
) -> Checked[str]:
    """Ask for prose: accepted when non-empty and complete (not cut off).

    ``accept`` is the domain's own check of the text: the text to keep (it may repair
    what it can, say strip a code fence), or None and the problems, which are said
    back to the model for the next attempt.
    """

    def check(result: ChatResult) -> tuple[str | None, list[str], list[CheckResult]]:
        text = result.content.strip()
        if not text:
            return None, ["the answer was empty"], []
        if result.done_reason == "length":
            return None, ["the answer was cut off at the length limit"], []
        if accept is not None:
            kept, problems = accept(text)
            if kept is None:
                return None, problems or ["the answer was refused"], []
            return kept, [], []
        return text, [], []

    def follow_up(result: ChatResult, problems: list[str]) -> list[Message]:
        # Not cut off (the loop handles that): empty, refused by ``accept``, or the
        # prompt was cut.
        if not result.content.strip():
            return []
        if accept is not None and not result.prompt_truncated:
            listed = "\n".join(f"- {p}" for p in problems)
            return [Message(role="user", content=prompts.text("repair_text", problems=listed))]
        return [Message(role="user", content=prompts.text("continue_shorter"))]

    return _ask(
        model,
        messages,
        task=task,
        max_attempts=max_attempts,
        options=options,
        format=None,
        on_token=on_token,
        check=check,
        follow_up=follow_up,
    )


# -- the loop ----------------------------------------------------------------

CheckFn = Callable[[ChatResult], tuple[Any, list[str], list[CheckResult]]]
# What to say back after a failed answer that was not cut off (the loop handles that).
FollowUp = Callable[[ChatResult, list[str]], list[Message]]


def _ask(
    model: ModelClient,
    messages: list[Message],
    *,
    task: str,
    max_attempts: int,
    options: dict[str, Any] | None,
    format: Any,
    on_token: TokenCallback | None,
    check: CheckFn,
    follow_up: FollowUp,
) -> Checked[Any]:
    started = time.monotonic()
    options = {**DEFAULT_OPTIONS, **(options or {})}
    attempts: list[Attempt] = []
    usage = Usage()
    conversation = list(messages)
    last: ChatResult | None = None
    dropped = 0
    for number in range(1, max_attempts + 1):
        result = model.chat(conversation, options=options, format=format, on_token=on_token)
        last = result
        usage = usage + result.usage
        dropped = max(dropped, result.dropped_context)
        value, problems, results = check(result)
        if result.prompt_truncated and value is not None:
            problems = ["the prompt did not fit the model's window and was cut"]
            value = None
        attempt = Attempt(
            number=number,
            prompt_digest=digest(conversation),
            ok=value is not None,
            problems=problems,
            checks=[r.to_dict() for r in results],
            duration_ms=result.duration_ms,
            done_reason=result.done_reason,
            cached=result.cached,
            raw=result.content[:MAX_RAW_CHARS],
        )
        attempts.append(attempt)
        if value is not None:
            checked: Checked[Any] = Checked(
                value=value,
                attempts=attempts,
                usage=usage,
                model=result.model,
                provider=result.provider,
                cached=all(a.cached for a in attempts),
                duration_ms=round((time.monotonic() - started) * 1000),
                dropped_context=dropped,
            )
            _record(task, model, attempts, ok=True)
            return checked
        log.info(
            "model answer rejected",
            extra={"task": task, "attempt": number, "problems": problems[:3]},
        )
        # A cached answer failed its checks: asking the same again gives the same.
        options = {**options, "cache": False} if result.cached else options
        if result.done_reason == "length":
            # Whatever the kind of answer, one cut off is asked again, shorter.
            said_back = [Message(role="user", content=prompts.text("continue_shorter"))]
        else:
            said_back = follow_up(result, problems)
        conversation = [
            *conversation,
            Message(role="assistant", content=result.content),
            *said_back,
        ]
        if conversation[-1].role == "assistant":
            conversation = list(messages)  # nothing to say back (empty answer): ask afresh
    _record(task, model, attempts, ok=False)
    summary = [
        {"attempt": a.number, "problems": a.problems, "answer_excerpt": a.raw[:300]}
        for a in attempts
    ]
    raise ModelOutputInvalid(
        f"the model gave no usable answer for {task} in {max_attempts} attempts;"
        f" last problem: {attempts[-1].problems[0] if attempts[-1].problems else 'unknown'}",
        details={"attempts": summary, "model": last.model if last else model.model},
    )


def _record(task: str, model: ModelClient, attempts: list[Attempt], *, ok: bool) -> None:
    record_history(
        {
            "task": task,
            "provider": model.provider,
            "model": model.model,
            "ok": ok,
            "attempts": [a.model_dump() for a in attempts],
        }
    )
