"""Our OpenAI-compatible client against the OpenAI double, over loopback.

The double speaks the protocol the real ``openai`` package expects (SSE chunks, the
usage chunk, OpenAI's error objects), so what passes here passes against llama.cpp's
server, vLLM or LM Studio: streaming, usage, formats, the window, and every failure
turned into a ``common.errors`` error with a fix.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from pydantic import BaseModel

from common.errors import ModelError, ModelNotPulled, ModelTimeout, ModelUnavailable
from common.models.base import Message
from common.models.openai_client import (
    FALLBACK_CONTEXT_LENGTH,
    OpenAIModelClient,
    api_base,
    server_root,
)
from tests.fakes.openai_server import FakeOpenAI

MODEL = "qwen2.5-coder:7b"
EMBED_MODEL = "nomic-embed-text"
KEY = "sk-test-0123456789abcdefSECRET"

# A server that keeps a cut stream's socket open would hang a test; this bounds it.
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fresh double per test, on its own port."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_client(fake: FakeOpenAI) -> Iterator[Callable[..., OpenAIModelClient]]:
    """Build our client against the double (or another URL); closed after the test."""
    made: list[OpenAIModelClient] = []

    def build(
        *,
        base_url: str | None = None,
        model: str = MODEL,
        api_key: str | None = None,
        timeout_s: float = 3.0,
        connect_timeout_s: float = 1.0,
    ) -> OpenAIModelClient:
        client = OpenAIModelClient(
            base_url=base_url or fake.base_url,
            model=model,
            embedding_model=EMBED_MODEL,
            api_key=api_key,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def _ask(text: str = "Explain this code.") -> list[Message]:
    return [
        Message(role="system", content="You are a careful coder."),
        Message(role="user", content=text),
    ]


def _chat_requests(fake: FakeOpenAI) -> list[dict[str, object]]:
    return [r["json"] for r in fake.requests_to("/v1/chat/completions")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- answers --------------------------------------------------------------------


def test_tokens_stream_in_order_and_usage_comes_from_the_usage_chunk(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a server that streams four pieces and counts 42 prompt tokens
    fake.script(["def ", "add(a, b):", "\n    return ", "a + b\n"], prompt_tokens=42)
    seen: list[str] = []

    # When we chat with a token callback
    result = make_client().chat(_ask(), on_token=seen.append)

    # Then every piece reached the callback in order, and the result is whole
    assert seen == ["def ", "add(a, b):", "\n    return ", "a + b\n"]
    assert result.content == "".join(seen)
    assert result.provider == "openai"
    assert result.model == MODEL
    assert result.done_reason == "stop" and result.complete
    assert result.usage.prompt_tokens == 42
    assert result.usage.completion_tokens == 4
    assert result.usage.total_tokens == 46
    # And the request streamed and asked for the usage chunk
    (sent,) = _chat_requests(fake)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "You are a careful coder."},
        {"role": "user", "content": "Explain this code."},
    ]


def test_usage_is_estimated_when_the_server_sends_none(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a server that ignores include_usage (older llama.cpp builds)
    fake.script("some answer text that is long enough", send_usage=False)

    # When we chat
    result = make_client().chat(_ask())

    # Then the counts are estimates, never zero
    assert result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens > 0


def test_num_predict_becomes_max_tokens_and_a_cut_answer_says_length(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given an answer longer than the caller allows
    fake.script(["one ", "two ", "three ", "four ", "five "])

    # When we ask for at most two tokens
    result = make_client().chat(_ask(), options={"num_predict": 2})

    # Then the server got max_tokens 2 and the answer is reported cut
    assert _chat_requests(fake)[0]["max_tokens"] == 2
    assert result.content == "one two "
    assert result.done_reason == "length"
    assert not result.complete


def test_options_map_to_openai_names(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # When we chat with Ollama-named options
    make_client().chat(
        _ask(),
        options={
            "temperature": 0.1,
            "top_p": 0.9,
            "seed": 7,
            "stop": ["```"],
            "top_k": 20,
            "num_ctx": 99999,
        },
    )

    # Then they arrive under OpenAI's names; top_k rides along for llama.cpp and vLLM,
    # and num_ctx (which these servers fix at start) is not sent
    (sent,) = _chat_requests(fake)
    assert sent["temperature"] == 0.1
    assert sent["top_p"] == 0.9
    assert sent["seed"] == 7
    assert sent["stop"] == ["```"]
    assert sent["top_k"] == 20
    assert "num_ctx" not in sent


def test_max_tokens_defaults_to_the_room_left_in_the_window(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a llama.cpp server with a 4096-token window
    fake.n_ctx = 4096

    # When we chat without num_predict
    make_client().chat(_ask())

    # Then max_tokens is what the window leaves after the (over-)estimated prompt
    sent = _chat_requests(fake)[0]
    assert isinstance(sent["max_tokens"], int)
    assert 4096 - 100 < sent["max_tokens"] < 4096


def test_context_that_does_not_fit_the_window_is_dropped_oldest_first(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a small window and two big context messages before the task
    fake.n_ctx = 4096
    big = "x = 1\n" * 2500  # ~4700 estimated tokens each
    messages = [
        Message(role="system", content="You are a careful coder."),
        Message(role="user", content="old file\n" + big, context=True),
        Message(role="user", content="new file\n" + big[:3000], context=True),
        Message(role="user", content="Fix the bug."),
    ]

    # When we chat
    result = make_client().chat(messages)

    # Then the oldest context went, the rest was sent
    assert result.dropped_context == 1
    contents = [m["content"] for m in _chat_requests(fake)[0]["messages"]]  # type: ignore[index]
    assert not any(c.startswith("old file") for c in contents)
    assert any(c.startswith("new file") for c in contents)
    assert contents[-1] == "Fix the bug."


def test_a_json_schema_is_sent_as_response_format(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    class Verdict(BaseModel):
        ok: bool
        reason: str

    schema = Verdict.model_json_schema()
    fake.script('{"ok": true, "reason": "parses"}')

    # When we chat with a JSON schema as the format
    result = make_client().chat(_ask(), format=schema)

    # Then the server was asked for that schema, and the answer validates
    (sent,) = _chat_requests(fake)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }
    assert Verdict.model_validate_json(result.content).ok is True


def test_format_json_asks_for_a_json_object(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    fake.script('{"a": 1}')

    result = make_client().chat(_ask(), format="json")

    assert _chat_requests(fake)[0]["response_format"] == {"type": "json_object"}
    assert json.loads(result.content) == {"a": 1}


# -- embeddings -----------------------------------------------------------------


def test_embed_returns_one_float_vector_per_text_in_order(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # When we embed two texts
    result = make_client().embed(["def a(): pass", "def b(): pass"])

    # Then two vectors of the server's size come back, from the embedding model
    assert len(result.vectors) == 2
    assert all(len(v) == 768 for v in result.vectors)
    assert result.vectors[0] != result.vectors[1]
    assert result.model == EMBED_MODEL
    assert result.prompt_tokens > 0
    (sent,) = [r["json"] for r in fake.requests_to("/v1/embeddings")]
    assert sent["model"] == EMBED_MODEL
    assert sent["encoding_format"] == "float"


def test_embed_with_a_model_the_server_lacks_names_the_embedding_setting(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    fake.models.remove(EMBED_MODEL)

    with pytest.raises(ModelNotPulled) as caught:
        make_client().embed(["x"])

    assert EMBED_MODEL in caught.value.message
    assert "OPENAI_EMBEDDING_MODEL" in caught.value.message


# -- the window -----------------------------------------------------------------


def test_context_length_comes_from_llama_cpp_props_and_is_cached(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a llama.cpp server started with -c 6144
    fake.n_ctx = 6144
    client = make_client()

    # When we ask twice
    first, second = client.context_length(), client.context_length()

    # Then it is the server's n_ctx, read once
    assert first == second == 6144
    assert len(fake.requests_to("/props")) == 1


def test_context_length_falls_back_to_vllm_max_model_len(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a vLLM server: no /props, max_model_len in /v1/models
    fake.max_model_len[MODEL] = 32768

    assert make_client().context_length() == 32768


def test_context_length_falls_back_to_8192_when_the_server_says_nothing(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    assert make_client().context_length() == FALLBACK_CONTEXT_LENGTH == 8192


# -- failures -------------------------------------------------------------------


def test_a_model_the_server_does_not_serve_is_model_not_pulled(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # When we chat with a model the server does not list
    with pytest.raises(ModelNotPulled) as caught:
        make_client(model="llama3:70b").chat(_ask())

    # Then the error names the model, the server and the setting to change
    error = caught.value
    assert error.status == 503
    assert "llama3:70b" in error.message
    assert fake.base_url in error.message
    assert "OPENAI_MODEL" in error.message
    assert error.details["model"] == "llama3:70b"
    assert "ollama pull" not in error.message


def test_a_wrong_key_is_a_model_error_that_never_shows_the_key(fake: FakeOpenAI) -> None:
    # Given a server that wants a bearer key, and our client with another one
    wrong = "sk-wrong-9876543210zyxwvuPRIVATE"
    with FakeOpenAI(api_key=KEY) as guarded:
        client = OpenAIModelClient(
            base_url=guarded.base_url,
            model=MODEL,
            api_key=wrong,
            timeout_s=3,
            connect_timeout_s=1,
        )
        try:
            # When we chat
            with pytest.raises(ModelError) as caught:
                client.chat(_ask())
        finally:
            client.close()
        # Then the server got the wrong key as a bearer token (proof it was sent)
        assert guarded.requests[0]["authorization"] == f"Bearer {wrong}"

    # And the error says OPENAI_API_KEY is wrong, without any part of either key
    error = caught.value
    assert error.status == 502
    assert "OPENAI_API_KEY" in error.message
    shown = json.dumps(error.to_body())
    for secret in (wrong, KEY, wrong[-4:], "PRIVATE", "SECRET"):
        assert secret not in shown


def test_the_right_key_is_accepted() -> None:
    with FakeOpenAI(api_key=KEY) as guarded:
        client = OpenAIModelClient(
            base_url=guarded.base_url,
            model=MODEL,
            api_key=KEY,
            timeout_s=3,
            connect_timeout_s=1,
        )
        try:
            assert client.chat(_ask()).content
        finally:
            client.close()


def test_a_server_that_is_down_is_model_unavailable_naming_the_setting(
    make_client: Callable[..., OpenAIModelClient],
) -> None:
    # Given nothing listening on the port
    url = f"http://127.0.0.1:{_free_port()}/v1"

    # When we chat
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        make_client(base_url=url).chat(_ask())

    # Then it fails fast (no retries) with a 503 naming OPENAI_BASE_URL and a fix
    assert time.monotonic() - started < 2
    error = caught.value
    assert error.status == 503
    assert "OPENAI_BASE_URL" in error.message
    assert url in error.message
    assert error.details["fix"]


def test_a_url_that_is_not_an_openai_api_root_says_so(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given OPENAI_BASE_URL pointing at a wrong path on a live server
    with pytest.raises(ModelUnavailable) as caught:
        make_client(base_url=f"{fake.url}/api").chat(_ask())

    assert "OPENAI_BASE_URL" in caught.value.message
    assert "/v1" in caught.value.message


def test_a_slow_first_token_is_a_timeout_naming_ollama_timeout(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a server that thinks longer than the timeout before its first byte
    fake.script("late", delay_first_s=5)

    # When we chat with a 0.5 s timeout
    started = time.monotonic()
    with pytest.raises(ModelTimeout) as caught:
        make_client(timeout_s=0.5).chat(_ask())

    # Then we gave up near the timeout with a 504 naming the one timeout setting
    assert time.monotonic() - started < 3
    assert caught.value.status == 504
    assert "OLLAMA_TIMEOUT" in caught.value.message


def test_a_stream_that_outlasts_the_total_deadline_is_a_timeout(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given tokens that each come in time but together take too long
    fake.script(["a "] * 20, delay_between_s=0.2)

    with pytest.raises(ModelTimeout):
        make_client(timeout_s=1.0).chat(_ask())


def test_an_error_in_the_middle_of_the_stream_is_a_model_error(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    fake.script(["part "], error_mid_stream="CUDA out of memory")

    with pytest.raises(ModelError) as caught:
        make_client().chat(_ask())

    assert "CUDA out of memory" in caught.value.message


def test_a_dropped_connection_is_a_model_error(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    fake.script(["a ", "b ", "c "], close_after_chunks=1)

    with pytest.raises(ModelError):
        make_client().chat(_ask())


def test_a_server_error_is_a_model_error_with_its_message(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    fake.script(status=500, error="the slot crashed")

    with pytest.raises(ModelError) as caught:
        make_client().chat(_ask())

    assert "the slot crashed" in caught.value.message


# -- health ---------------------------------------------------------------------


def test_health_lists_the_models_and_the_server_version(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given a vLLM-like server that says its version
    fake.version = "0.11.0"

    health = make_client().health()

    assert health == {
        "version": "0.11.0",
        "model": MODEL,
        "models": [MODEL, EMBED_MODEL],
    }


def test_health_of_a_llama_cpp_server_reports_its_build(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given llama.cpp's server: one model under its own name, /props answering
    fake.models[:] = ["gemma-3-270m-q4_k_m.gguf"]
    fake.n_ctx = 4096

    # When the configured name differs (llama.cpp serves its one model whatever is asked)
    health = make_client().health()

    # Then health is fine and names the build
    assert health["version"] == "llama.cpp b6000-fake"
    assert health["models"] == ["gemma-3-270m-q4_k_m.gguf"]


def test_health_without_the_model_is_model_not_pulled(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    fake.models.remove(MODEL)

    with pytest.raises(ModelNotPulled) as caught:
        make_client().health()

    assert MODEL in caught.value.message


def test_health_of_a_server_that_is_down_is_model_unavailable(
    make_client: Callable[..., OpenAIModelClient],
) -> None:
    with pytest.raises(ModelUnavailable):
        make_client(base_url=f"http://127.0.0.1:{_free_port()}").health()


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "base", "root"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://h/proxy/v1", "http://h/proxy/v1", "http://h/proxy"),
    ],
)
def test_base_url_gets_v1_when_it_has_no_path(given: str, base: str, root: str) -> None:
    assert api_base(given) == base
    assert server_root(given) == root


def test_a_bare_server_url_works(
    fake: FakeOpenAI, make_client: Callable[..., OpenAIModelClient]
) -> None:
    # Given OPENAI_BASE_URL without /v1, as people often write it for llama.cpp
    assert make_client(base_url=fake.url).chat(_ask()).content


# -- the double speaks the protocol the real openai package expects ----------------


def test_the_double_answers_the_real_openai_package(fake: FakeOpenAI) -> None:
    import openai

    fake.script("Hello there", prompt_tokens=3)
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as real:
        # A whole (non-streamed) completion
        whole = real.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
        # Embeddings in the package's default encoding (base64), decoded by it
        vectors = real.embeddings.create(model=EMBED_MODEL, input=["a", "b"])
        listed = real.models.list()

    assert whole.object == "chat.completion"
    assert whole.choices[0].message.content == "Hello there"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.prompt_tokens == 3
    assert [len(d.embedding) for d in vectors.data] == [768, 768]
    assert [m.id for m in listed.data] == [MODEL, EMBED_MODEL]


def test_the_double_refuses_a_missing_key_like_openai() -> None:
    import httpx

    with FakeOpenAI(api_key=KEY) as guarded:
        response = httpx.get(f"{guarded.base_url}/models", timeout=5)

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert set(error) == {"message", "type", "param", "code"}
