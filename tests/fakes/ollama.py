"""A protocol-faithful Ollama HTTP double, standard library only.

The real ``ollama`` package (and anything else that speaks Ollama's HTTP API) talks
to it over loopback. It follows Ollama's docs/api.md and its Go server's behaviour:

* ``POST /api/chat`` and ``POST /api/generate``: ``stream`` defaults to true; a stream
  is ``application/x-ndjson`` sent with chunked transfer encoding, one JSON object a
  line, the last one ``"done": true`` with ``done_reason`` and the counters
  (durations in nanoseconds). An error during an answer is a line ``{"error": ...}``.
* ``POST /api/embed``, ``GET /api/tags``, ``POST /api/show``, ``GET /api/version``,
  ``GET|HEAD /``.
* A model that is not pulled: 404 ``{"error": "model \\"x\\" not found, try pulling it
  first"}``. An unknown path (or a wrong method): 404 ``404 page not found`` in
  text/plain, like the Gin router.

Each test scripts the answers it needs with :meth:`FakeOllama.script`; without a
script the double answers :attr:`FakeOllama.default_answer`.

    with FakeOllama() as fake:
        fake.script(["Hel", "lo"], prompt_eval_count=12)
        client = ollama.Client(host=fake.url)
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.fakes._http import DoubleHandler, HttpDouble

__all__ = ["DEFAULT_MODELS", "FakeOllama", "Script"]

DEFAULT_MODELS: tuple[str, ...] = ("qwen2.5-coder:7b", "nomic-embed-text:latest")
VERSION = "0.12.6"
ROUTES = ("chat", "generate", "embed")

DEFAULT_ANSWER = (
    "## Answer\n\n"
    "You asked: {question}\n\n"
    "- This answer comes from the fake Ollama server.\n"
    "- It is deterministic.\n"
)

# Word-ish "tokens": a run of non-space characters with the spaces after it, or a
# run of leading spaces. Joining them gives back the text exactly.
_TOKEN = re.compile(r"\s+|\S+\s*")


def _full_name(name: str) -> str:
    """``name`` with its tag: Ollama reads ``x`` as ``x:latest``."""
    base = name.rsplit("/", 1)[-1]
    return name if ":" in base else f"{name}:latest"


def _now() -> str:
    """RFC 3339 with nanoseconds' worth of digits, like Go's time.Time in JSON."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


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


@dataclass
class Script:
    """One queued answer (see :meth:`FakeOllama.script`)."""

    pieces: list[str] | None = None
    done_reason: str = "stop"
    delay_first_s: float = 0.0
    delay_between_s: float = 0.0
    status: int | None = None
    error: str | None = None
    error_mid_stream: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    close_after_chunks: int | None = None
    embeddings: list[list[float]] | None = None


class _Handler(DoubleHandler):
    server_version = "FakeOllama/" + VERSION
    json_content_type = "application/json; charset=utf-8"

    def do_HEAD(self) -> None:
        self.server.fake._dispatch(self, "HEAD")

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, {"error": message})

    def start_stream(self) -> None:
        self.start_chunked("application/x-ndjson")

    def send_chunk(self, obj: Any) -> None:
        self.send_chunked(json.dumps(obj, separators=(",", ":")).encode() + b"\n")


class FakeOllama(HttpDouble):
    """An Ollama server double on ``127.0.0.1:<random port>``.

    Parameters
    ----------
    models:
        The pulled models (``x`` stands for ``x:latest``).
    embedding_dim:
        Length of the vectors ``/api/embed`` returns.

    Attributes
    ----------
    models:
        The pulled models; tests may change it while the server runs.
    context_length:
        Context length ``/api/show`` reports, by full model name (default 32768).
    capabilities:
        ``/api/show`` capabilities by full model name; by default ``["embedding"]``
        for a name containing ``embed`` and ``["completion"]`` for the others. A model
        without ``completion`` refuses chat and generate with 400, like Ollama.
    requests:
        Every request, in order: ``{"method", "path", "json"}`` (``json`` is None for
        a request without a JSON body).
    default_answer:
        The answer when no script is queued; ``{question}`` is replaced with the first
        line of the last user message (or of the prompt).
    """

    handler = _Handler
    thread_name = "fake-ollama"

    DEFAULT_CONTEXT_LENGTH = 32768

    def __init__(
        self,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        embedding_dim: int = 768,
    ) -> None:
        self._default_models = tuple(models)
        self.models: set[str] = set(self._default_models)
        self.embedding_dim = embedding_dim
        self.context_length: dict[str, int] = {}
        self.capabilities: dict[str, list[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.default_answer: str = DEFAULT_ANSWER
        # Used for every request no script is queued for (benches set a steady pace).
        self.default_script: Script | None = None
        self.version: str = VERSION
        self._scripts: dict[str, deque[Script]] = {r: deque() for r in ROUTES}
        super().__init__()

    # -- scripting ------------------------------------------------------------

    def script(
        self,
        content: str | list[str] | None = None,
        *,
        route: str = "chat",
        done_reason: str = "stop",
        delay_first_s: float = 0,
        delay_between_s: float = 0,
        status: int | None = None,
        error: str | None = None,
        error_mid_stream: str | None = None,
        prompt_eval_count: int | None = None,
        eval_count: int | None = None,
        close_after_chunks: int | None = None,
        embeddings: list[list[float]] | None = None,
    ) -> None:
        """Queue one answer for ``route`` ("chat", "generate" or "embed"); FIFO.

        ``content``: a str is cut into word-ish tokens, a list is the streamed pieces
        as given, None means :attr:`default_answer`. ``status``/``error``: answer with
        that HTTP status (500 if only ``error`` is given) and ``{"error": error}``.
        ``error_mid_stream``: after the pieces, a line ``{"error": ...}`` and no done
        chunk (a non-streaming request gets a 500 instead). ``close_after_chunks``:
        drop the connection after that many chunks, without a done chunk.
        ``delay_first_s``: wait before sending anything (Ollama sends its headers with
        the first chunk). ``delay_between_s``: wait before each later chunk.
        ``embeddings``: for route "embed", the vectors to return.
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
            done_reason=done_reason,
            delay_first_s=delay_first_s,
            delay_between_s=delay_between_s,
            status=status,
            error=error,
            error_mid_stream=error_mid_stream,
            prompt_eval_count=prompt_eval_count,
            eval_count=eval_count,
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
            self.models.clear()
            self.models.update(self._default_models)
            self.context_length.clear()
            self.capabilities.clear()
            self.default_answer = DEFAULT_ANSWER
            self.default_script = None
            self.version = VERSION

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        """The recorded requests to ``path``, in order."""
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    # -- model catalogue ------------------------------------------------------

    def _pulled(self, name: str | None) -> str | None:
        """The full name of the pulled model ``name`` refers to, or None."""
        if not name:
            return None
        wanted = _full_name(name)
        with self._lock:
            pulled = {_full_name(m) for m in self.models}
        return wanted if wanted in pulled else None

    def _capabilities(self, full: str) -> list[str]:
        with self._lock:
            caps = self.capabilities.get(full)
        if caps is not None:
            return list(caps)
        return ["embedding"] if "embed" in full else ["completion"]

    def _details(self, full: str) -> dict[str, Any]:
        family = "nomic-bert" if "embed" in full else "qwen2"
        tag = full.rsplit(":", 1)[1]
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([bm])", tag.lower())
        if match:
            size = f"{match.group(1)}{match.group(2).upper()}"
        else:
            size = "137M" if family == "nomic-bert" else "7.6B"
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": size,
            "quantization_level": "F16" if family == "nomic-bert" else "Q4_K_M",
        }

    @staticmethod
    def _digest(full: str) -> str:
        return hashlib.sha256(full.encode()).hexdigest()

    def _tags(self) -> dict[str, Any]:
        with self._lock:
            names = sorted({_full_name(m) for m in self.models})
        models = []
        for full in names:
            models.append(
                {
                    "name": full,
                    "model": full,
                    "modified_at": "2025-01-01T00:00:00.000000000Z",
                    "size": 4_683_087_332 if "embed" not in full else 274_302_450,
                    "digest": self._digest(full),
                    "details": self._details(full),
                }
            )
        return {"models": models}

    def _show(self, full: str) -> dict[str, Any]:
        details = self._details(full)
        arch = details["family"]
        with self._lock:
            ctx = self.context_length.get(full, self.DEFAULT_CONTEXT_LENGTH)
        embedding = arch == "nomic-bert"
        parameters = (
            'stop                           "<|im_start|>"\n'
            'stop                           "<|im_end|>"'
            if not embedding
            else "num_ctx                        8192"
        )
        template = (
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
            "{{ end }}<|im_start|>assistant\n"
            if not embedding
            else "{{ .Prompt }}"
        )
        return {
            "license": "Apache License 2.0",
            "modelfile": (
                '# Modelfile generated by "ollama show"\n'
                f"# To build a new Modelfile based on this, replace FROM with:\n"
                f"# FROM {full}\n\n"
                f"FROM /root/.ollama/models/blobs/sha256-{self._digest(full)}\n"
                f'TEMPLATE """{template}"""\n'
                + "".join(f"PARAMETER {line}\n" for line in parameters.splitlines())
            ),
            "parameters": parameters,
            "template": template,
            "details": details,
            "model_info": {
                "general.architecture": arch,
                "general.basename": full.split(":", 1)[0],
                "general.file_type": 15 if not embedding else 1,
                "general.parameter_count": 7_615_616_512 if not embedding else 136_727_040,
                "general.quantization_version": 2,
                f"{arch}.attention.head_count": 28 if not embedding else 12,
                f"{arch}.block_count": 28 if not embedding else 12,
                f"{arch}.context_length": ctx,
                f"{arch}.embedding_length": 3584 if not embedding else self.embedding_dim,
            },
            "capabilities": self._capabilities(full),
            "modified_at": "2025-01-01T00:00:00.000000000Z",
        }

    # -- request handling (server threads) -------------------------------------

    def _next_script(self, route: str) -> Script | None:
        with self._lock:
            queue = self._scripts[route]
            return queue.popleft() if queue else None

    def _dispatch(self, h: _Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        raw = h.read_body()
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                bad_json = str(exc)
        with self._lock:
            self.requests.append({"method": method, "path": path, "json": body})

        if path == "/" and method in ("GET", "HEAD"):
            h.send_bytes(
                200, b"Ollama is running", "text/plain; charset=utf-8", head=method == "HEAD"
            )
            return
        head = method == "HEAD"
        if path == "/api/version" and method in ("GET", "HEAD"):
            h.send_json(200, {"version": self.version}, head=head)
            return
        if path == "/api/tags" and method in ("GET", "HEAD"):
            h.send_json(200, self._tags(), head=head)
            return
        posts = {
            "/api/chat": self._chat,
            "/api/generate": self._generate,
            "/api/embed": self._embed,
            "/api/show": self._show_route,
        }
        if path not in posts or method != "POST":
            h.send_bytes(404, b"404 page not found", "text/plain")
            return
        if not raw:
            h.send_error_json(400, "missing request body")
            return
        if bad_json is not None or not isinstance(body, dict):
            h.send_error_json(400, "invalid request body")
            return
        posts[path](h, body)

    def _model_or_error(self, h: _Handler, body: dict[str, Any]) -> str | None:
        name = body.get("model") or body.get("name")
        if not name:
            h.send_error_json(400, "model is required")
            return None
        full = self._pulled(name)
        if full is None:
            h.send_error_json(404, f'model "{name}" not found, try pulling it first')
            return None
        return full

    def _show_route(self, h: _Handler, body: dict[str, Any]) -> None:
        full = self._model_or_error(h, body)
        if full is not None:
            h.send_json(200, self._show(full))

    def _chat(self, h: _Handler, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        texts = [str(m.get("content") or "") for m in messages if isinstance(m, dict)]
        users = [
            str(m.get("content") or "")
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        question = users[-1] if users else ""
        self._complete(h, body, "chat", "".join(texts), question, empty=not messages)

    def _generate(self, h: _Handler, body: dict[str, Any]) -> None:
        prompt = str(body.get("prompt") or "")
        system = str(body.get("system") or "")
        self._complete(h, body, "generate", system + prompt, prompt, empty=not prompt)

    def _answer_text(self, question: str) -> str:
        lines = question.strip().splitlines()
        first = lines[0].strip() if lines else ""
        return self.default_answer.replace("{question}", first)

    def _complete(
        self,
        h: _Handler,
        body: dict[str, Any],
        route: str,
        prompt_text: str,
        question: str,
        *,
        empty: bool,
    ) -> None:
        started = time.monotonic_ns()
        full = self._model_or_error(h, body)
        if full is None:
            return
        if "completion" not in self._capabilities(full):
            h.send_error_json(400, f'"{full}" does not support {route}')
            return
        model = str(body["model"])
        stream = body.get("stream", True) is not False
        script = self._next_script(route) or self.default_script or Script()

        self._sleep(script.delay_first_s)
        if script.close_after_chunks is not None and not stream:
            h.drop()
        if script.status is not None:
            h.send_error_json(script.status, script.error or "internal server error")
            return

        key = "message" if route == "chat" else "response"

        def payload(text: str) -> Any:
            return {"role": "assistant", "content": text} if route == "chat" else text

        if empty:
            # No messages (or no prompt) only loads the model, as Ollama does.
            load = {"model": model, "created_at": _now(), key: payload(""), "done": True}
            load["done_reason"] = "load"
            if stream:
                h.start_stream()
                h.send_chunk(load)
                h.end_stream()
            else:
                h.send_json(200, load)
            return

        pieces = script.pieces
        if pieces is None:
            pieces = _tokens(self._answer_text(question))
        done_reason = script.done_reason
        options = body.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        if isinstance(limit, int) and limit >= 0 and limit < len(pieces):
            pieces = pieces[:limit]
            done_reason = "length"

        prompt_eval_count = (
            script.prompt_eval_count
            if script.prompt_eval_count is not None
            else _estimate_tokens(prompt_text)
        )
        eval_count = script.eval_count if script.eval_count is not None else len(pieces)

        def final() -> dict[str, Any]:
            prompt_ns = prompt_eval_count * 1_000_000
            eval_ns = eval_count * 20_000_000
            load_ns = 1_000_000
            elapsed = time.monotonic_ns() - started
            return {
                "model": model,
                "created_at": _now(),
                key: payload(""),
                "done": True,
                "done_reason": done_reason,
                "total_duration": max(elapsed, load_ns + prompt_ns + eval_ns),
                "load_duration": load_ns,
                "prompt_eval_count": prompt_eval_count,
                "prompt_eval_duration": prompt_ns,
                "eval_count": eval_count,
                "eval_duration": eval_ns,
            }

        if not stream:
            # A real server takes as long to generate an answer it does not stream.
            for _ in self._with_gaps(pieces, script.delay_between_s):
                pass
            self._sleep(script.delay_between_s if pieces else 0)
            if script.error_mid_stream is not None:
                h.send_error_json(500, script.error_mid_stream)
                return
            whole = final()
            whole[key] = payload("".join(pieces))
            h.send_json(200, whole)
            return

        h.start_stream()
        sent = 0
        for piece in self._with_gaps(pieces, script.delay_between_s):
            if script.close_after_chunks is not None and sent >= script.close_after_chunks:
                h.drop()
            h.send_chunk({"model": model, "created_at": _now(), key: payload(piece), "done": False})
            sent += 1
        if script.close_after_chunks is not None and sent >= script.close_after_chunks:
            h.drop()
        if script.error_mid_stream is not None:
            self._sleep(script.delay_between_s if sent else 0)
            h.send_chunk({"error": script.error_mid_stream})
            h.end_stream()
            return
        self._sleep(script.delay_between_s if sent else 0)
        h.send_chunk(final())
        h.end_stream()

    def _with_gaps(self, pieces: list[str], gap: float) -> Iterator[str]:
        for i, piece in enumerate(pieces):
            if i > 0:
                self._sleep(gap)
            yield piece

    def _embed(self, h: _Handler, body: dict[str, Any]) -> None:
        started = time.monotonic_ns()
        full = self._model_or_error(h, body)
        if full is None:
            return
        script = self._next_script("embed") or Script()
        self._sleep(script.delay_first_s)
        if script.close_after_chunks is not None:
            h.drop()
        if script.status is not None:
            h.send_error_json(script.status, script.error or "internal server error")
            return
        raw_input = body.get("input", [])
        if isinstance(raw_input, str):
            texts = [raw_input] if raw_input else []
        elif isinstance(raw_input, list) and all(isinstance(t, str) for t in raw_input):
            texts = list(raw_input)
        else:
            h.send_error_json(400, "invalid input type")
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
        count = (
            script.prompt_eval_count
            if script.prompt_eval_count is not None
            else sum(_estimate_tokens(t) for t in texts)
        )
        h.send_json(
            200,
            {
                "model": str(body["model"]),
                "embeddings": vectors,
                "total_duration": max(time.monotonic_ns() - started, 1_000_000),
                "load_duration": 1_000_000,
                "prompt_eval_count": count,
            },
        )
