"""The Ollama double speaks Ollama's HTTP API, and our model client copes with what it says.

Part 1 drives the double with the real ``ollama`` package, so a test that passes here
would pass against a real Ollama server. Part 2 drives ``OllamaModelClient`` through
the double: streaming, usage, and every failure it must turn into a ``common.errors``.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import ollama
import pytest

from common.errors import AppError, ModelError, ModelNotPulled, ModelTimeout, ModelUnavailable
from common.models.base import ChatResult, Message
from common.models.ollama_client import OllamaModelClient
from tests.fakes.ollama import FakeOllama

MODEL = "qwen2.5-coder:7b"
EMBED_MODEL = "nomic-embed-text"

# A server that keeps a cut stream's socket open would hang a test; this bounds it.
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """A fresh double per test, on its own port."""
    with FakeOllama() as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    """The real ``ollama`` package, pointed at the double."""
    with ollama.Client(host=fake.url, timeout=5) as real:
        yield real


@pytest.fixture
def make_ours(fake: FakeOllama) -> Iterator[Callable[..., OllamaModelClient]]:
    """Build our client against the double (or another host); closed after the test."""
    made: list[OllamaModelClient] = []

    def build(
        *,
        host: str | None = None,
        model: str = MODEL,
        timeout_s: float = 3.0,
        connect_timeout_s: float = 1.0,
        keep_alive: str | None = None,
    ) -> OllamaModelClient:
        ours = OllamaModelClient(
            host=host or fake.url,
            model=model,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            keep_alive=keep_alive,
        )
        made.append(ours)
        return ours

    yield build
    for ours in made:
        ours.close()


def _user(text: str) -> list[Message]:
    return [
        Message(role="system", content="You are a careful coder."),
        Message(role="user", content=text),
    ]


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def _raw(fake: FakeOllama, method: str, path: str, body: Any = None) -> httpx.Response:
    with httpx.Client(base_url=fake.url, timeout=5) as http:
        if body is None:
            return http.request(method, path)
        return http.request(method, path, content=json.dumps(body))


# ---------------------------------------------------------------------------
# Part 1: the double, seen by the real ollama package and by plain HTTP
# ---------------------------------------------------------------------------


def test_root_and_version_answer_like_ollama(fake: FakeOllama) -> None:
    # Given a running double
    # When we ask for / (GET and HEAD) and /api/version
    get_root = _raw(fake, "GET", "/")
    head_root = _raw(fake, "HEAD", "/")
    version = _raw(fake, "GET", "/api/version")
    # Then they answer as Ollama does
    assert get_root.status_code == 200 and get_root.text == "Ollama is running"
    assert head_root.status_code == 200 and head_root.content == b""
    assert version.json() == {"version": "0.12.6"}
    assert version.headers["content-type"].startswith("application/json")


def test_unknown_path_is_the_go_routers_404(fake: FakeOllama) -> None:
    # Given a running double
    # When we call a path Ollama does not serve, or a known path with the wrong method
    unknown = _raw(fake, "GET", "/api/nope")
    wrong_method = _raw(fake, "GET", "/api/chat")
    # Then both get Gin's plain-text 404
    for response in (unknown, wrong_method):
        assert response.status_code == 404
        assert response.text == "404 page not found"
        assert response.headers["content-type"].startswith("text/plain")


def test_chat_streams_ndjson_with_chunked_encoding_by_default(fake: FakeOllama) -> None:
    # Given a scripted answer in three pieces
    fake.script(["Hel", "lo", "!"], prompt_eval_count=7)
    # When we post a chat without "stream" (Ollama defaults it to true)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = _raw(fake, "POST", "/api/chat", body)
    # Then the answer is NDJSON, chunked, one object a line, the last one done
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["message"]["content"] for line in lines] == ["Hel", "lo", "!", ""]
    assert all(line["done"] is False for line in lines[:-1])
    for line in lines[:-1]:
        assert set(line) == {"model", "created_at", "message", "done"}
        assert line["message"]["role"] == "assistant"
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["prompt_eval_count"] == 7 and final["eval_count"] == 3
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0
    assert final["created_at"].endswith("Z")


def test_real_client_chat_stream(fake: FakeOllama, client: ollama.Client) -> None:
    # Given a scripted streamed answer
    fake.script(["def ", "add(a, b):", "\n    return a + b"], eval_count=9)
    # When the real ollama package streams a chat
    chunks = list(
        client.chat(model=MODEL, messages=[{"role": "user", "content": "add"}], stream=True)
    )
    # Then it parses every chunk into a ChatResponse and the last one carries the counters
    assert all(isinstance(c, ollama.ChatResponse) for c in chunks)
    assert "".join(c.message.content or "" for c in chunks) == "def add(a, b):\n    return a + b"
    assert [c.done for c in chunks] == [False, False, False, True]
    final = chunks[-1]
    assert final.model == MODEL and final.done_reason == "stop"
    assert final.eval_count == 9
    assert isinstance(final.prompt_eval_count, int) and final.prompt_eval_count >= 1
    assert isinstance(final.total_duration, int)


def test_real_client_chat_without_stream_gets_one_object(
    fake: FakeOllama, client: ollama.Client
) -> None:
    # Given no script: the double answers its default Markdown answer
    # When the real client asks without streaming
    response = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Explain this function\nwith details"}],
    )
    # Then one object holds the whole answer and the final fields
    assert isinstance(response, ollama.ChatResponse)
    assert response.done is True and response.done_reason == "stop"
    assert response.message.role == "assistant"
    assert "Explain this function" in (response.message.content or "")
    assert "with details" not in (response.message.content or "")
    assert response.message.content.startswith("## ")  # type: ignore[union-attr]
    # ~ len(text) / 4 when not scripted
    assert response.prompt_eval_count == len("Explain this function\nwith details") // 4
    assert response.eval_count and response.eval_count > 0
    assert fake.requests[-1]["json"]["stream"] is False


def test_num_predict_cuts_the_answer_and_says_length(
    fake: FakeOllama, client: ollama.Client
) -> None:
    # Given an answer of five tokens
    fake.script("one two three four five")
    # When the request limits the answer to two tokens
    response = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "count"}],
        options={"num_predict": 2, "temperature": 0},
        format="json",
        keep_alive="5m",
    )
    # Then the answer is cut, done_reason is "length", and the request was recorded as sent
    assert response.message.content == "one two "
    assert response.done_reason == "length" and response.eval_count == 2
    sent = fake.requests[-1]["json"]
    assert sent["options"] == {"num_predict": 2, "temperature": 0}
    assert sent["format"] == "json" and sent["keep_alive"] == "5m"


def test_real_client_generate(fake: FakeOllama, client: ollama.Client) -> None:
    # Given a scripted answer for /api/generate
    fake.script(["4", "2"], route="generate", done_reason="stop")
    # When the real client streams and then asks without streaming (default answer)
    streamed = list(client.generate(model=MODEL, prompt="6*7?", stream=True))
    whole = client.generate(model=MODEL, prompt="What is 6*7?")
    # Then generate uses "response" instead of "message"
    assert all(isinstance(c, ollama.GenerateResponse) for c in streamed)
    assert "".join(c.response or "" for c in streamed) == "42"
    assert streamed[-1].done and streamed[-1].done_reason == "stop"
    assert "What is 6*7?" in (whole.response or "") and whole.done is True
    raw = _raw(fake, "POST", "/api/generate", {"model": MODEL, "prompt": "x", "stream": False})
    assert "response" in raw.json() and "message" not in raw.json()


def test_real_client_embed_returns_deterministic_unit_vectors(
    fake: FakeOllama, client: ollama.Client
) -> None:
    # Given the embedding model is pulled
    # When we embed a list, then the same text alone
    many = client.embed(model=EMBED_MODEL, input=["alpha", "beta"])
    one = client.embed(model=EMBED_MODEL, input="alpha")
    # Then vectors are unit length, 768 long, and the same text gives the same vector
    assert isinstance(many, ollama.EmbedResponse)
    assert len(many.embeddings) == 2 and len(one.embeddings) == 1
    for vector in many.embeddings:
        assert len(vector) == 768
        assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert list(one.embeddings[0]) == list(many.embeddings[0])
    assert list(many.embeddings[0]) != list(many.embeddings[1])
    assert isinstance(many.prompt_eval_count, int) and isinstance(many.total_duration, int)


def test_embedding_dimension_is_configurable() -> None:
    # Given a double built with 384-dimension embeddings
    with FakeOllama(embedding_dim=384) as small, ollama.Client(host=small.url) as real:
        # When we embed
        result = real.embed(model=EMBED_MODEL, input="x")
    # Then the vectors have that length
    assert len(result.embeddings[0]) == 384


def test_real_client_list_shows_pulled_models(fake: FakeOllama, client: ollama.Client) -> None:
    # Given one more model pulled, under a name without a tag
    fake.models.add("llama3.2")
    # When the real client lists models
    listed = client.list()
    raw = _raw(fake, "GET", "/api/tags").json()
    # Then every pulled model is there with its full name and Ollama's fields
    assert {m.model for m in listed.models} == {
        "qwen2.5-coder:7b",
        "nomic-embed-text:latest",
        "llama3.2:latest",
    }
    for entry in raw["models"]:
        assert set(entry) == {"name", "model", "modified_at", "size", "digest", "details"}
        assert entry["name"] == entry["model"]
        assert isinstance(entry["size"], int) and len(entry["digest"]) == 64
        assert entry["details"]["format"] == "gguf"
        assert {"family", "families", "parameter_size", "quantization_level"} <= set(
            entry["details"]
        )


def test_real_client_show_reports_the_context_length(
    fake: FakeOllama, client: ollama.Client
) -> None:
    # Given a model with a custom context length
    fake.context_length[MODEL] = 8192
    # When the real client shows it, and the embedding model
    shown = client.show(MODEL)
    default = client.show(EMBED_MODEL)
    # Then model_info carries the architecture and context length; details and capabilities too
    assert isinstance(shown, ollama.ShowResponse)
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "qwen2"
    assert shown.modelinfo["qwen2.context_length"] == 8192
    assert shown.capabilities == ["completion"]
    assert shown.details is not None and shown.details.format == "gguf"
    assert isinstance(shown.modelfile, str) and isinstance(shown.parameters, str)
    assert isinstance(shown.template, str)
    assert default.modelinfo is not None
    arch = default.modelinfo["general.architecture"]
    assert default.modelinfo[f"{arch}.context_length"] == 32768


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"model": "llama3", "messages": [{"role": "user", "content": "x"}]}),
        ("/api/generate", {"model": "llama3", "prompt": "x"}),
        ("/api/embed", {"model": "llama3", "input": "x"}),
        ("/api/show", {"model": "llama3"}),
    ],
)
def test_model_not_pulled_is_ollamas_404(fake: FakeOllama, path: str, body: dict[str, Any]) -> None:
    # Given "llama3" is not pulled
    # When any model route names it
    response = _raw(fake, "POST", path, body)
    # Then Ollama's own 404 body comes back
    assert response.status_code == 404
    assert response.json() == {"error": 'model "llama3" not found, try pulling it first'}


def test_embedding_model_refuses_chat_and_empty_chat_only_loads(client: ollama.Client) -> None:
    # Given an embedding-only model and a chat model
    # When we chat with the embedding model, then send the chat model no messages
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=EMBED_MODEL, messages=[{"role": "user", "content": "x"}])
    loaded = client.chat(model=MODEL, messages=[])
    # Then the first is Ollama's 400, the second a "load" answer with no content
    assert refused.value.status_code == 400
    assert refused.value.error == '"nomic-embed-text:latest" does not support chat'
    assert loaded.done is True and loaded.done_reason == "load"
    assert loaded.message.content == ""


def test_real_client_raises_response_error_for_a_missing_model(client: ollama.Client) -> None:
    # Given a model that is not pulled
    # When the real client chats with it
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="llama3", messages=[{"role": "user", "content": "x"}])
    # Then it sees Ollama's 404 and message
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "llama3" not found, try pulling it first'


def test_scripted_status_and_mid_stream_error_reach_the_real_client(
    fake: FakeOllama, client: ollama.Client
) -> None:
    # Given a 500 answer, then an answer that fails after one piece
    fake.script(status=500, error="llama runner process has terminated")
    fake.script(["partial"], error_mid_stream="out of memory")
    # When the real client chats twice
    with pytest.raises(ollama.ResponseError) as first:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "x"}])
    seen: list[str] = []
    with pytest.raises(ollama.ResponseError) as second:
        for chunk in client.chat(
            model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            seen.append(chunk.message.content or "")
    # Then the first is a 500 with the message, the second an error line after the piece
    assert first.value.status_code == 500
    assert first.value.error == "llama runner process has terminated"
    assert seen == ["partial"]
    assert second.value.error == "out of memory"


def test_reset_clears_scripts_and_requests_and_restores_models(fake: FakeOllama) -> None:
    # Given a changed double
    fake.script("queued")
    fake.models.clear()
    _raw(fake, "GET", "/api/tags")
    # When it is reset
    fake.reset()
    # Then scripts, requests and models are back to the start
    assert fake.pending("chat") == 0 and fake.requests == []
    assert fake.models == {"qwen2.5-coder:7b", "nomic-embed-text:latest"}


def test_survives_a_client_that_hangs_up_mid_stream(
    fake: FakeOllama, client: ollama.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a slow stream
    fake.script(["x"] * 50, delay_between_s=0.01)
    # When a client reads two chunks and hangs up
    with httpx.Client(base_url=fake.url, timeout=5) as http:
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        with http.stream("POST", "/api/chat", content=body) as response:
            lines = response.iter_lines()
            next(lines)
            next(lines)
    time.sleep(0.1)  # let the server thread hit the broken pipe
    # Then the double keeps serving, and wrote nothing to stderr
    assert client.chat(model=MODEL, messages=[{"role": "user", "content": "again"}]).done
    assert capfd.readouterr().err == ""


def test_scripts_are_consumed_once_each_under_concurrency(fake: FakeOllama) -> None:
    # Given eight scripted answers
    for i in range(8):
        fake.script(f"answer-{i}")
    answers: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        with ollama.Client(host=fake.url, timeout=5) as real:
            reply = real.chat(model=MODEL, messages=[{"role": "user", "content": "x"}])
        with lock:
            answers.append(reply.message.content or "")

    # When eight threads chat at once
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    # Then each script was served exactly once
    assert sorted(answers) == sorted(f"answer-{i}" for i in range(8))
    assert len(fake.requests_to("/api/chat")) == 8


# ---------------------------------------------------------------------------
# Part 2: our OllamaModelClient against the double
# ---------------------------------------------------------------------------


def test_our_chat_streams_tokens_in_order_with_usage(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given a scripted answer with known counters
    pieces = ["```python\n", "def f():\n", "    return 1\n", "```"]
    fake.script(pieces, prompt_eval_count=42, eval_count=4)
    ours = make_ours()
    seen: list[str] = []
    # When we chat with a token callback
    result = ours.chat(_user("Write f"), on_token=seen.append)
    # Then tokens arrive in order, the content is their join, usage and done_reason pass through
    assert isinstance(result, ChatResult)
    assert seen == pieces
    assert result.content == "".join(pieces)
    assert result.usage.prompt_tokens == 42 and result.usage.completion_tokens == 4
    assert result.usage.total_tokens == 46
    assert result.done_reason == "stop" and result.model == MODEL
    assert result.duration_ms >= 0


def test_our_chat_passes_length_through_when_the_caller_capped_the_answer(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given an answer the model stopped at the caller's own num_predict
    fake.script(["a", "b"], done_reason="length")
    # When we chat with that cap
    result = make_ours().chat(_user("long"), options={"num_predict": 2})
    # Then done_reason says so, the answer is marked incomplete, and nothing is retried
    assert result.done_reason == "length" and result.content == "ab"
    assert not result.complete
    assert len(fake.requests_to("/api/chat")) == 1


def test_an_answer_cut_by_the_window_is_retried_with_the_whole_window(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given a model with a 32k window whose first answer runs out of room
    fake.context_length[MODEL] = 32768
    fake.script(["cut"], done_reason="length", prompt_eval_count=5, eval_count=100)
    fake.script(["whole answer"], prompt_eval_count=5, eval_count=200)
    # When we chat without a num_predict of our own
    result = make_ours().chat(_user("explain"))
    # Then the second try asks for the whole window, and usage adds both tries
    first, second = (r["json"]["options"]["num_ctx"] for r in fake.requests_to("/api/chat"))
    assert first == 4096 and second == 32768
    assert result.content == "whole answer" and result.complete
    assert result.num_ctx == 32768
    assert result.usage.completion_tokens == 300


def test_the_window_fits_the_prompt_and_is_capped_by_the_model(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given a model with an 8k window, a short prompt and a long one
    fake.context_length[MODEL] = 8192
    ours = make_ours()
    # When we chat with each
    ours.chat(_user("short"))
    ours.chat(_user("x" * 40_000))
    # Then the short one gets the minimum window and the long one the model's cap
    windows = [r["json"]["options"]["num_ctx"] for r in fake.requests_to("/api/chat")]
    assert windows[0] == 4096
    assert set(windows[1:]) == {8192}
    assert len(fake.requests_to("/api/show")) == 1  # the length is asked once


def test_context_messages_are_dropped_oldest_first_never_the_task(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given a 4k window and three big context messages before the task
    fake.context_length[MODEL] = 4096
    messages = [
        Message(role="system", content="You are a careful coder."),
        Message(role="user", content="old " * 1500, context=True),
        Message(role="user", content="newer " * 1000, context=True),
        Message(role="user", content="newest " * 200, context=True),
        Message(role="user", content="the task"),
    ]
    # When we chat
    result = make_ours().chat(messages)
    # Then the oldest context went first, the task and the system prompt stayed
    sent = [m["content"][:6] for m in fake.requests_to("/api/chat")[0]["json"]["messages"]]
    assert sent == ["You ar", "newest", "the ta"]
    assert result.dropped_context == 2


def test_a_prompt_the_server_cut_is_marked_truncated(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given the model's whole window is already in use and the server evaluates far
    # fewer prompt tokens than were sent
    fake.context_length[MODEL] = 4096
    fake.script("answer", prompt_eval_count=300)
    # When we send a prompt that does not fit even without context
    result = make_ours().chat(_user("y" * 20_000))
    # Then the answer is marked incomplete, not silently returned as whole
    assert result.prompt_truncated and not result.complete


def test_our_request_carries_model_messages_stream_options_and_format(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given our client with a keep_alive
    ours = make_ours(keep_alive="10m")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    # When we chat with options and a JSON schema format, then with neither
    ours.chat(
        _user("first"),
        options={"temperature": 0, "num_ctx": 8192},
        format=schema,
        on_token=lambda piece: None,
    )
    ours.chat(_user("second"))
    # Then the recorded requests carry what Ollama needs
    first, second = (r["json"] for r in fake.requests_to("/api/chat"))
    assert fake.requests[0]["method"] == "POST"
    assert first["model"] == MODEL and first["stream"] is True
    assert first["messages"] == [
        {"role": "system", "content": "You are a careful coder."},
        {"role": "user", "content": "first"},
    ]
    assert first["options"] == {"temperature": 0, "num_ctx": 8192}
    assert first["format"] == schema
    assert first["keep_alive"] == "10m"
    # Nobody watching the tokens: one answer, not a stream of chunks to parse.
    assert second["stream"] is False
    # Without options of the caller's, only the window we chose is sent.
    assert second["options"] == {"num_ctx": 4096} and "format" not in second


def test_our_chat_model_not_pulled(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given the configured model is not pulled
    fake.models.discard(MODEL)
    # When we chat
    with pytest.raises(ModelNotPulled) as caught:
        make_ours().chat(_user("x"))
    # Then the error says how to fix it
    assert "ollama pull qwen2.5-coder:7b" in caught.value.message
    assert caught.value.details["fix"] == "ollama pull qwen2.5-coder:7b"


def test_our_chat_server_unreachable(make_ours: Callable[..., OllamaModelClient]) -> None:
    # Given nothing listens on the port
    ours = make_ours(host=f"http://127.0.0.1:{_closed_port()}")
    # When we chat
    with pytest.raises(ModelUnavailable) as caught:
        ours.chat(_user("x"))
    # Then the error names OLLAMA_HOST
    assert "OLLAMA_HOST" in caught.value.message
    assert not isinstance(caught.value.__cause__, AppError)


def test_our_chat_times_out_waiting_for_the_first_byte(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given a model that takes longer to start than our timeout
    fake.script(["late"], delay_first_s=2.0)
    ours = make_ours(timeout_s=0.3, connect_timeout_s=0.3)
    started = time.monotonic()
    # When we chat
    with pytest.raises(ModelTimeout) as caught:
        ours.chat(_user("x"))
    # Then we gave up near the timeout, and said so
    assert time.monotonic() - started < 1.8
    assert "OLLAMA_TIMEOUT" in caught.value.message


def test_our_chat_enforces_the_total_deadline_on_a_slow_stream(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given a stream whose chunks each come in time but which runs past the deadline
    fake.script(["tok "] * 40, delay_between_s=0.05)
    ours = make_ours(timeout_s=0.4, connect_timeout_s=0.3)
    seen: list[str] = []
    started = time.monotonic()
    # When we chat
    with pytest.raises(ModelTimeout):
        ours.chat(_user("x"), on_token=seen.append)
    # Then we stopped near the deadline, after some tokens, long before the stream's end
    assert time.monotonic() - started < 1.8
    assert 0 < len(seen) < 40


def test_our_chat_error_mid_stream_is_a_model_error(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given Ollama fails after two pieces
    fake.script(["a", "b"], error_mid_stream="llama runner process has terminated")
    seen: list[str] = []
    # When we chat
    with pytest.raises(ModelError) as caught:
        make_ours().chat(_user("x"), on_token=seen.append)
    # Then the pieces were seen and the error carries Ollama's message
    assert seen == ["a", "b"]
    assert "llama runner process has terminated" in caught.value.message


def test_our_chat_server_error_500_is_a_model_error(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given Ollama answers 500
    fake.script(status=500, error="unexpected server status: llm server loading model")
    # When we chat
    with pytest.raises(ModelError) as caught:
        make_ours().chat(_user("x"))
    # Then it is a ModelError with the server's message
    assert "llm server loading model" in caught.value.message
    assert caught.value.status == 502


def test_our_chat_connection_dropped_mid_stream_is_an_app_error(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given the server drops the connection after two chunks, with no done chunk
    fake.script(["a", "b", "c", "d"], close_after_chunks=2)
    # When we chat
    with pytest.raises(AppError) as caught:
        make_ours().chat(_user("x"))
    # Then we get one of ours (not a raw httpx error) with a message for a human
    assert isinstance(caught.value, ModelError | ModelUnavailable)
    assert not isinstance(caught.value, httpx.HTTPError)
    assert caught.value.message


def test_our_chat_connection_dropped_mid_stream_says_the_answer_was_cut(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given the server drops the connection after two chunks
    fake.script(["a", "b", "c", "d"], close_after_chunks=2)
    # When we chat
    with pytest.raises(AppError) as caught:
        make_ours().chat(_user("x"))
    # Then the error is a ModelError about the cut answer, not advice to start the server
    assert isinstance(caught.value, ModelError)
    assert "unreachable" not in caught.value.message
    assert "ollama serve" not in caught.value.message


def test_our_chat_wrong_host_path_is_not_reported_as_model_not_pulled(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given OLLAMA_HOST points at the OpenAI-compatible prefix, where /api/chat is a 404 page
    ours = make_ours(host=f"{fake.url}/v1")
    # When we chat (the model is pulled)
    with pytest.raises(AppError) as caught:
        ours.chat(_user("x"))
    # Then the error must not tell the user to pull a model they already have
    assert fake.requests[-1]["path"].startswith("/v1/api/")
    assert not isinstance(caught.value, ModelNotPulled)
    assert "OLLAMA_HOST" in caught.value.message


def test_our_health_reports_version_and_model(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given the model is pulled (also under a name without a tag)
    fake.models.add("codellama")
    # When we ask for health, with a tagged and an untagged model name
    tagged = make_ours().health()
    untagged = make_ours(model="codellama").health()
    # Then version and model come back
    assert tagged == {"version": "0.12.6", "model": MODEL}
    assert untagged == {"version": "0.12.6", "model": "codellama"}


def test_our_health_model_not_pulled(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given the server is up without the model
    fake.models = {"nomic-embed-text:latest"}
    # When we ask for health
    with pytest.raises(ModelNotPulled) as caught:
        make_ours().health()
    # Then it says which model to pull
    assert "ollama pull qwen2.5-coder:7b" in caught.value.message


def test_our_health_server_unreachable(make_ours: Callable[..., OllamaModelClient]) -> None:
    # Given nothing listens
    ours = make_ours(host=f"http://127.0.0.1:{_closed_port()}")
    # When we ask for health
    with pytest.raises(ModelUnavailable) as caught:
        ours.health()
    # Then the error names OLLAMA_HOST
    assert "OLLAMA_HOST" in caught.value.message


def test_our_health_wrong_host_path_is_an_app_error(
    fake: FakeOllama, make_ours: Callable[..., OllamaModelClient]
) -> None:
    # Given OLLAMA_HOST has a path where no Ollama API lives
    ours = make_ours(host=f"{fake.url}/v1")
    # When we ask for health
    with pytest.raises(AppError) as caught:
        ours.health()
    # Then we get one of our errors naming OLLAMA_HOST, not a JSON decoding error
    assert "OLLAMA_HOST" in caught.value.message
