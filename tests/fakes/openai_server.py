"""A protocol-faithful OpenAI-compatible HTTP double, standard library only.

The real ``openai`` package (and anything else that speaks the OpenAI HTTP API)
talks to it over loopback. It follows OpenAI's API reference and what llama.cpp's
server and vLLM add to it:

* ``POST /v1/chat/completions``: without ``stream`` one ``chat.completion`` object;
  with ``"stream": true`` a ``text/event-stream`` sent with chunked transfer encoding,
  one ``data: {chunk}`` event per piece (``choices[0].delta.content``; the first
  chunk carries the role), a last chunk with ``finish_reason``, then, when
  ``stream_options.include_usage`` is set, a chunk with empty ``choices`` and the
  ``usage`` (every earlier chunk then has ``"usage": null``), then ``data: [DONE]``.
  ``max_tokens`` (or ``max_completion_tokens``) cuts the answer: ``finish_reason``
  ``"length"``. An error during an answer is an event ``data: {"error": {...}}``.
* ``POST /v1/embeddings`` (``encoding_format`` ``float`` or ``base64``), ``GET
  /v1/models`` (``max_model_len`` per model when set, as vLLM does), ``GET /props``
  (llama.cpp's, only when :attr:`FakeOpenAI.n_ctx` is set; 404 otherwise, as on
  vLLM), ``GET /version`` (vLLM's, only when :attr:`FakeOpenAI.version` is set).
* Errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: an
  unknown model 404 ``model_not_found``; a wrong bearer key (when
  :attr:`FakeOpenAI.api_key` is set) 401 ``invalid_api_key``, its message masking the
  key as OpenAI does; an unknown path 404 ``Invalid URL (METHOD /path)``.

Each test scripts the answers it needs with :meth:`FakeOpenAI.script`; without a
script the double answers :attr:`FakeOpenAI.default_answer`.

    with FakeOpenAI() as fake:
        fake.script(["Hel", "lo"], prompt_tokens=12)
        client = openai.OpenAI(base_url=fake.base_url, api_key="x")
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.fakes._http import DoubleHandler, HttpDouble

__all__ = ["DEFAULT_MODELS", "FakeOpenAI", "Script"]

DEFAULT_MODELS: tuple[str, ...] = ("qwen2.5-coder:7b", "nomic-embed-text")
ROUTES = ("chat", "embeddings")
CREATED = 1_735_689_600  # 2025-01-01T00:00:00Z
FINGERPRINT = "fp_fake_openai"

DEFAULT_ANSWER = (
    "## Answer\n\n"
    "You asked: {question}\n\n"
    "- This answer comes from the fake OpenAI-compatible server.\n"
    "- It is deterministic.\n"
)

# Word-ish "tokens": a run of non-space characters with the spaces after it, or a
# run of leading spaces. Joining them gives back the text exactly.
_TOKEN = re.compile(r"\s+|\S+\s*")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _unit_vector(text: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _mask_key(key: str) -> str:
    """How OpenAI shows a wrong key in its 401: the first and last few characters."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass
class Script:
    """One queued answer (see :meth:`FakeOpenAI.script`)."""

    pieces: list[str] | None = None
    finish_reason: str = "stop"
    delay_first_s: float = 0.0
    delay_between_s: float = 0.0
    status: int | None = None
    error: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    error_mid_stream: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    send_usage: bool = True
    close_after_chunks: int | None = None
    embeddings: list[list[float]] | None = None


class _Handler(DoubleHandler):
    server_version = "FakeOpenAI/1.0"

    def send_error_json(self, status: int, message: str, **fields: Any) -> None:
        self.send_json(status, error_body(message, **fields))

    def start_stream(self) -> None:
        self.start_chunked("text/event-stream; charset=utf-8", Cache_Control="no-cache")

    def send_event(self, data: Any) -> None:
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        self.send_chunked(f"data: {text}\n\n".encode())


class FakeOpenAI(HttpDouble):
    """An OpenAI-compatible server double on ``127.0.0.1:<random port>``.

    Parameters
    ----------
    models:
        The model ids the server serves (``/v1/models``).
    embedding_dim:
        Length of the vectors ``/v1/embeddings`` returns.
    api_key:
        When set, every request must carry ``Authorization: Bearer <api_key>``.

    Attributes
    ----------
    models:
        The served model ids; tests may change it while the server runs.
    n_ctx:
        When set, ``GET /props`` answers like llama.cpp's server with this window;
        when None (the default) it is a 404, as on vLLM and OpenAI.
    build_info:
        llama.cpp's ``build_info`` in ``/props``.
    max_model_len:
        vLLM's ``max_model_len`` in ``/v1/models``, by model id.
    version:
        When set, ``GET /version`` answers ``{"version": version}`` (vLLM).
    requests:
        Every request, in order: ``{"method", "path", "json", "authorization"}``.
    default_answer:
        The answer when no script is queued; ``{question}`` is replaced with the first
        line of the last user message.
    """

    handler = _Handler
    thread_name = "fake-openai"

    def __init__(
        self,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        embedding_dim: int = 768,
        api_key: str | None = None,
    ) -> None:
        self._default_models = tuple(models)
        self.models: list[str] = list(self._default_models)
        self.embedding_dim = embedding_dim
        self.api_key = api_key
        self.n_ctx: int | None = None
        self.build_info: str = "b6000-fake"
        self.max_model_len: dict[str, int] = {}
        self.version: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.default_answer: str = DEFAULT_ANSWER
        self._scripts: dict[str, deque[Script]] = {r: deque() for r in ROUTES}
        super().__init__()

    @property
    def base_url(self) -> str:
        """The API root an OpenAI client is given: ``<url>/v1``."""
        return f"{self.url}/v1"

    # -- scripting ------------------------------------------------------------

    def script(
        self,
        content: str | list[str] | None = None,
        *,
        route: str = "chat",
        finish_reason: str = "stop",
        delay_first_s: float = 0,
        delay_between_s: float = 0,
        status: int | None = None,
        error: str | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
        error_mid_stream: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        send_usage: bool = True,
        close_after_chunks: int | None = None,
        embeddings: list[list[float]] | None = None,
    ) -> None:
        """Queue one answer for ``route`` ("chat" or "embeddings"); FIFO.

        ``content``: a str is cut into word-ish tokens, a list is the streamed pieces
        as given, None means :attr:`default_answer`. ``status``/``error``: answer with
        that HTTP status (500 if only ``error`` is given) and OpenAI's error object
        (``error_type``, ``error_code``). ``error_mid_stream``: after the pieces, an
        error event and no finishing chunk (a non-streaming request gets a 500).
        ``send_usage`` False: no usage chunk even when asked, as older servers do.
        ``close_after_chunks``: drop the connection after that many chunks.
        ``delay_first_s``: wait before sending anything. ``delay_between_s``: wait
        before each later chunk. ``embeddings``: for "embeddings", the vectors.
        """
        if route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
        if error is not None and status is None:
            status = 500
        if status is not None and error is None:
            error = "internal server error"
        pieces = _tokens(content) if isinstance(content, str) else content
        item = Script(
            pieces=list(pieces) if pieces is not None else None,
            finish_reason=finish_reason,
            delay_first_s=delay_first_s,
            delay_between_s=delay_between_s,
            status=status,
            error=error,
            error_type=error_type,
            error_code=error_code,
            error_mid_stream=error_mid_stream,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            send_usage=send_usage,
            close_after_chunks=close_after_chunks,
            embeddings=embeddings,
        )
        with self._lock:
            self._scripts[route].append(item)

    def pending(self, route: str = "chat") -> int:
        """How many scripted answers for ``route`` are still queued."""
        with self._lock:
            return len(self._scripts[route])

    def reset(self) -> None:
        """Clear scripts and recorded requests; restore the default models and settings."""
        with self._lock:
            for queue in self._scripts.values():
                queue.clear()
            self.requests.clear()
            self.models[:] = self._default_models
            self.n_ctx = None
            self.max_model_len.clear()
            self.version = None
            self.default_answer = DEFAULT_ANSWER

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        """The recorded requests to ``path``, in order."""
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    # -- request handling (server threads) -------------------------------------

    def _next_script(self, route: str) -> Script | None:
        with self._lock:
            queue = self._scripts[route]
            return queue.popleft() if queue else None

    def _authorized(self, h: _Handler) -> bool:
        if self.api_key is None:
            return True
        header = h.headers.get("Authorization") or ""
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if given == self.api_key:
            return True
        if not given:
            message = (
                "You didn't provide an API key. You need to provide your API key in an"
                " Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        else:
            message = (
                f"Incorrect API key provided: {_mask_key(given)}. You can find your API key"
                " at https://platform.openai.com/account/api-keys."
            )
        h.send_error_json(401, message, code="invalid_api_key")
        return False

    def _dispatch(self, h: _Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        raw = h.read_body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "json": body,
                    "authorization": h.headers.get("Authorization"),
                }
            )
        gets = {
            "/v1/models": self._models_route,
            "/props": self._props_route,
            "/version": self._version_route,
        }
        posts = {"/v1/chat/completions": self._chat, "/v1/embeddings": self._embeddings}
        routes = gets if method == "GET" else posts if method == "POST" else {}
        handler = routes.get(path)
        if (
            handler is None
            or (path == "/props" and self.n_ctx is None)
            or (path == "/version" and self.version is None)
        ):
            h.send_error_json(404, f"Invalid URL ({method} {path})")
            return
        if not self._authorized(h):
            return
        if method == "GET":
            handler(h, {})
            return
        if bad_json or not isinstance(body, dict):
            h.send_error_json(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means"
                " you aren't using your HTTP library correctly.)",
            )
            return
        handler(h, body)

    def _models_route(self, h: _Handler, _body: dict[str, Any]) -> None:
        with self._lock:
            data = []
            for model in self.models:
                item: dict[str, Any] = {
                    "id": model,
                    "object": "model",
                    "created": CREATED,
                    "owned_by": "fake",
                }
                if model in self.max_model_len:
                    item["max_model_len"] = self.max_model_len[model]
                data.append(item)
        h.send_json(200, {"object": "list", "data": data})

    def _props_route(self, h: _Handler, _body: dict[str, Any]) -> None:
        with self._lock:
            models = list(self.models)
            n_ctx = self.n_ctx
        h.send_json(
            200,
            {
                "default_generation_settings": {
                    "n_ctx": n_ctx,
                    "params": {"n_predict": -1, "temperature": 0.8, "top_p": 0.95},
                },
                "total_slots": 1,
                "model_path": f"/models/{models[0] if models else 'model'}.gguf",
                "chat_template": "{{ messages }}",
                "build_info": self.build_info,
            },
        )

    def _version_route(self, h: _Handler, _body: dict[str, Any]) -> None:
        h.send_json(200, {"version": self.version})

    def _model_or_error(self, h: _Handler, body: dict[str, Any]) -> str | None:
        name = body.get("model")
        if not name or not isinstance(name, str):
            h.send_error_json(400, "you must provide a model parameter", param="model", code=None)
            return None
        with self._lock:
            served = name in self.models
        if not served:
            h.send_error_json(
                404,
                f"The model `{name}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
            return None
        return name

    def _answer_text(self, question: str) -> str:
        lines = question.strip().splitlines()
        first = lines[0].strip() if lines else ""
        return self.default_answer.replace("{question}", first)

    def _chat(self, h: _Handler, body: dict[str, Any]) -> None:
        model = self._model_or_error(h, body)
        if model is None:
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            h.send_error_json(
                400, "[] is too short - 'messages'", param="messages", code="empty_array"
            )
            return
        texts = [str(m.get("content") or "") for m in messages if isinstance(m, dict)]
        users = [
            str(m.get("content") or "")
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        stream = body.get("stream") is True
        stream_options = body.get("stream_options") or {}
        include_usage = bool(
            isinstance(stream_options, dict) and stream_options.get("include_usage")
        )
        script = self._next_script("chat") or Script()

        self._sleep(script.delay_first_s)
        if script.status is not None:
            h.send_error_json(
                script.status,
                script.error or "internal server error",
                type=script.error_type
                or ("server_error" if script.status >= 500 else "invalid_request_error"),
                code=script.error_code,
            )
            return

        pieces = script.pieces
        if pieces is None:
            pieces = _tokens(self._answer_text(users[-1] if users else ""))
        finish_reason = script.finish_reason
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and 0 <= limit < len(pieces):
            pieces = pieces[:limit]
            finish_reason = "length"
        prompt_tokens = (
            script.prompt_tokens
            if script.prompt_tokens is not None
            else sum(_estimate_tokens(t) + 4 for t in texts)
        )
        completion_tokens = (
            script.completion_tokens if script.completion_tokens is not None else len(pieces)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        if not stream:
            if script.close_after_chunks is not None:
                h.drop()
            if script.error_mid_stream is not None:
                h.send_error_json(500, script.error_mid_stream, type="server_error")
                return
            h.send_json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "".join(pieces),
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            item: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                item["usage"] = None
            return item

        h.start_stream()
        h.send_event(chunk({"role": "assistant", "content": "", "refusal": None}))
        sent = 0
        for piece in self._with_gaps(pieces, script.delay_between_s):
            if script.close_after_chunks is not None and sent >= script.close_after_chunks:
                h.drop()
            h.send_event(chunk({"content": piece}))
            sent += 1
        if script.close_after_chunks is not None and sent >= script.close_after_chunks:
            h.drop()
        self._sleep(script.delay_between_s if sent else 0)
        if script.error_mid_stream is not None:
            h.send_event(error_body(script.error_mid_stream, type="server_error"))
            h.end_stream()
            return
        h.send_event(chunk({}, finish_reason))
        if include_usage and script.send_usage:
            h.send_event(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [],
                    "usage": usage,
                }
            )
        h.send_event("[DONE]")
        h.end_stream()

    def _with_gaps(self, pieces: list[str], gap: float) -> Iterator[str]:
        for i, piece in enumerate(pieces):
            if i > 0:
                self._sleep(gap)
            yield piece

    def _embeddings(self, h: _Handler, body: dict[str, Any]) -> None:
        model = self._model_or_error(h, body)
        if model is None:
            return
        script = self._next_script("embeddings") or Script()
        self._sleep(script.delay_first_s)
        if script.close_after_chunks is not None:
            h.drop()
        if script.status is not None:
            h.send_error_json(
                script.status,
                script.error or "internal server error",
                type=script.error_type or "server_error",
                code=script.error_code,
            )
            return
        raw_input = body.get("input")
        if isinstance(raw_input, str) and raw_input:
            texts = [raw_input]
        elif (
            isinstance(raw_input, list)
            and raw_input
            and all(isinstance(t, str) and t for t in raw_input)
        ):
            texts = list(raw_input)
        else:
            h.send_error_json(
                400,
                "'input' : input must be a string or an array of non-empty strings",
                param="input",
            )
            return
        dim = self.embedding_dim
        dims = body.get("dimensions")
        if isinstance(dims, int) and 0 < dims < dim:
            dim = dims
        if script.embeddings is not None:
            vectors = script.embeddings
        else:
            vectors = []
            for text in texts:
                vec = _unit_vector(text, self.embedding_dim)[:dim]
                norm = math.sqrt(sum(v * v for v in vec)) or 1.0
                vectors.append([v / norm for v in vec])
        encoding = body.get("encoding_format") or "float"
        data: list[dict[str, Any]] = []
        for i, vec in enumerate(vectors):
            value: Any = vec
            if encoding == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        count = (
            script.prompt_tokens
            if script.prompt_tokens is not None
            else sum(_estimate_tokens(t) for t in texts)
        )
        h.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": count, "total_tokens": count},
            },
        )
