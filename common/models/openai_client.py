"""The OpenAI-compatible provider: llama.cpp's server, vLLM, LM Studio and the like.

Over the official ``openai`` package, imported when a client is made (only
``MODEL_PROVIDER=openai`` pays for it). Like the Ollama client it always streams:
streaming is what lets us enforce a total deadline, show tokens as they come, and
keep what a model said before it stalled.

These servers fix their context window when they start, so unlike Ollama there is
no ``num_ctx`` to ask for: the window is read once (llama.cpp's ``/props``, vLLM's
``max_model_len``), the prompt is fitted into it and ``max_tokens`` asks for the room
that is left.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from common.config import Settings
from common.errors import ModelError, ModelNotPulled, ModelTimeout, ModelUnavailable
from common.logs import get_logger, redact_url
from common.models.base import (
    ChatResult,
    Embeddings,
    Message,
    ResponseFormat,
    TokenCallback,
    Usage,
)
from common.models.context import (
    DEFAULT_ANSWER_TOKENS,
    estimate_messages,
    estimate_tokens,
    fit_messages,
)

if TYPE_CHECKING:
    import openai

log = get_logger("models.openai")

# llama.cpp's ``llama-server`` listens here by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
# When the server says nothing about its window (LM Studio, older servers): a window
# every current code model has, and small enough not to overrun most server configs.
FALLBACK_CONTEXT_LENGTH = 8192
# Never ask for less room than this for the answer, even when the estimate says the
# prompt fills the window: the estimate errs high, and a server that really is full
# says so (400 on vLLM, finish_reason "length" on llama.cpp).
MIN_ANSWER_TOKENS = 256
# Local servers ignore the key, but the ``openai`` package insists on one.
_NO_KEY = "no-key"

# Our option names (Ollama's) -> the OpenAI request's.
_OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "num_predict": "max_tokens",
    "seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def api_base(url: str) -> str:
    """``OPENAI_BASE_URL`` as the ``openai`` package wants it: the API root, ``/v1`` included.

    A bare ``http://host:port`` (how people name a llama.cpp server) gets ``/v1``.
    """
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return urlunsplit(parts._replace(path="/v1"))
    return url


def server_root(url: str) -> str:
    """The server's root, where llama.cpp serves ``/props`` and vLLM ``/version``."""
    base = api_base(url)
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _class_names(exc: BaseException) -> set[str]:
    # httpx or its httpx2 fork, depending on the openai release: match by name.
    return {cls.__name__ for cls in type(exc).__mro__}


class OpenAIModelClient:
    """Chat with one model on one OpenAI-compatible server.

    Parameters
    ----------
    base_url:
        ``OPENAI_BASE_URL``: the API root (``http://127.0.0.1:8080/v1``); a URL with
        no path gets ``/v1``.
    model:
        ``OPENAI_MODEL`` (else ``OLLAMA_MODEL``).
    embedding_model:
        ``OPENAI_EMBEDDING_MODEL`` (else ``EMBEDDING_MODEL``).
    api_key:
        ``OPENAI_API_KEY``; local servers usually need none. Never logged or shown.
    timeout_s:
        Total time for one call, first byte to last token. It is ``OLLAMA_TIMEOUT``:
        one timeout setting for every provider, so switching providers changes no
        other setting.
    connect_timeout_s:
        Time to open the connection (``OLLAMA_CONNECT_TIMEOUT``).
    """

    provider = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        embedding_model: str = "nomic-embed-text",
        api_key: str | None = None,
        timeout_s: float,
        connect_timeout_s: float,
        client: openai.OpenAI | None = None,
    ) -> None:
        import openai

        self.base_url = api_base(base_url)
        self.root_url = server_root(base_url)
        self.model = model
        self.embedding_model = embedding_model
        self.timeout_s = timeout_s
        self._context_length: int | None = None
        # The read timeout bounds the wait for each chunk (the first token included);
        # the loop in _chat_once() bounds the whole answer. No retries here: a model
        # call is slow and the agents decide what is worth another attempt.
        self._client = client or openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or _NO_KEY,
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIModelClient:
        key = settings.OPENAI_API_KEY
        return cls(
            base_url=settings.OPENAI_BASE_URL or DEFAULT_BASE_URL,
            model=settings.OPENAI_MODEL or settings.OLLAMA_MODEL,
            embedding_model=settings.OPENAI_EMBEDDING_MODEL or settings.EMBEDDING_MODEL,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.OLLAMA_TIMEOUT,
            connect_timeout_s=settings.OLLAMA_CONNECT_TIMEOUT,
        )

    # -- errors ---------------------------------------------------------------

    @property
    def _where(self) -> str:
        return redact_url(self.base_url)

    def _unreachable(self) -> ModelUnavailable:
        return ModelUnavailable(
            f"the model server at {self._where} (OPENAI_BASE_URL) is unreachable: start"
            " your OpenAI-compatible server (for example `llama-server -m model.gguf"
            " --port 8080`), or set OPENAI_BASE_URL to where it runs",
            details={
                "fix": "start the OpenAI-compatible server, or set OPENAI_BASE_URL",
                "openai_base_url": self._where,
            },
        )

    def _not_served(self, model: str) -> ModelNotPulled:
        variable = "OPENAI_EMBEDDING_MODEL" if model == self.embedding_model else "OPENAI_MODEL"
        return ModelNotPulled(
            f"the model {model} is not served by {self._where}: load it on that server,"
            f" or set {variable} to a model it lists at {self._where}/models",
            details={
                "fix": f"load {model} on the server, or set {variable} to one it serves",
                "model": model,
            },
        )

    def _timeout(self, waited_s: float) -> ModelTimeout:
        return ModelTimeout(
            f"the model {self.model} did not answer within {self.timeout_s:g} s"
            f" (OLLAMA_TIMEOUT, the timeout of every provider); waited {waited_s:.1f} s",
            details={"timeout_s": self.timeout_s},
        )

    def _bad_key(self) -> ModelError:
        # The server's own message is not repeated: OpenAI's echoes part of the key.
        return ModelError(
            f"the model server at {self._where} refused OPENAI_API_KEY (401): set"
            " OPENAI_API_KEY to a key that server accepts, or unset it for a server"
            " that needs none",
            details={"fix": "set OPENAI_API_KEY to a key the server accepts"},
        )

    def _translate(self, exc: Exception, model: str, started: float) -> Exception:
        import openai

        waited = time.monotonic() - started
        names = _class_names(exc)
        if isinstance(exc, openai.APITimeoutError):
            cause = exc.__cause__
            if cause is not None and "ConnectTimeout" in _class_names(cause):
                return self._unreachable()
            return self._timeout(waited)
        if isinstance(exc, openai.APIConnectionError):
            if exc.__cause__ is not None and not isinstance(exc.__cause__, openai.OpenAIError):
                # What the transport raised: a stream cut short, or no connection at all.
                cause = exc.__cause__
                translated = self._translate(cause, model, started)  # type: ignore[arg-type]
                if translated is not cause:
                    return translated
            return self._unreachable()
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc, model)
        if isinstance(exc, openai.APIError):
            # An error event in the middle of a stream.
            return ModelError(f"the model server failed during the answer: {exc.message[:300]}")
        # The transport's own errors (older openai releases do not wrap those raised
        # while a stream is read).
        if "TimeoutException" in names:
            return self._timeout(waited)
        if names & {"RemoteProtocolError", "ReadError"}:
            return ModelError(
                f"the model server at {self._where} closed the connection in the middle of"
                f" the answer after {waited:.1f} s; see the server's log for the cause"
            )
        if names & {"TransportError", "ConnectionError"}:
            return self._unreachable()
        if isinstance(exc, ValueError):  # JSONDecodeError, pydantic ValidationError
            return ModelUnavailable(
                f"{self._where} (OPENAI_BASE_URL) did not answer like an OpenAI-compatible"
                " server: check OPENAI_BASE_URL",
                details={"openai_base_url": self._where},
            )
        return exc

    def _status_error(self, exc: openai.APIStatusError, model: str) -> Exception:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        text = str(body.get("message") or "").strip()
        code = str(exc.code or body.get("code") or "")
        if status in (401, 403):
            return self._bad_key()
        if status == 404:
            # OpenAI and LM Studio say model_not_found; vLLM "The model `x` does not
            # exist"; a bare 404 means the URL is not an OpenAI API root.
            if code == "model_not_found" or (
                "model" in text.lower() and ("not" in text.lower() or "exist" in text.lower())
            ):
                return self._not_served(model)
            return ModelUnavailable(
                f"{self._where} (OPENAI_BASE_URL) does not serve the OpenAI API"
                f" ({(text or 'not found')[:80]}): set OPENAI_BASE_URL to the API root,"
                " e.g. http://127.0.0.1:8080/v1",
                details={"openai_base_url": self._where},
            )
        if status >= 500:
            return ModelError(f"the model server failed ({status}): {text[:300]}")
        return ModelError(f"the model server refused the request ({status}): {text[:300]}")

    # -- calls ----------------------------------------------------------------

    def chat(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any] | None = None,
        format: ResponseFormat = None,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Send ``messages`` and return the whole answer.

        Context messages that do not fit the server's window (with room for the
        answer) are dropped, oldest first; ``max_tokens`` is the caller's
        ``num_predict``, else the room the window has left. ``format`` is "json" or
        a JSON schema the answer must follow (``response_format``).

        Raises
        ------
        ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        """
        options = dict(options or {})
        limit = self.context_length()
        wanted = options.get("num_predict")
        answer_room = int(wanted) if wanted is not None and int(wanted) > 0 else 0
        sent, dropped = fit_messages(
            messages, limit=limit, answer_tokens=answer_room or DEFAULT_ANSWER_TOKENS
        )
        estimate = estimate_messages(sent)
        if not answer_room:
            options["num_predict"] = max(limit - estimate, MIN_ANSWER_TOKENS)
        result = self._chat_once(sent, options=options, format=format, on_token=on_token)
        evaluated = result.usage.prompt_tokens
        result.prompt_truncated = estimate > limit or (
            estimate > limit // 2 and 0 < evaluated < estimate // 2
        )
        result.dropped_context = dropped
        return result

    def _request(
        self, messages: list[Message], options: dict[str, Any], format: ResponseFormat
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        extra: dict[str, Any] = {}
        for name, value in options.items():
            if name in _OPTION_NAMES and value is not None:
                request[_OPTION_NAMES[name]] = value
            elif name in ("top_k", "min_p", "repeat_penalty"):
                # Not OpenAI's, but llama.cpp's server and vLLM take them.
                extra[name] = value
        if extra:
            request["extra_body"] = extra
        if isinstance(format, dict):
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": format},
            }
        elif format == "json":
            request["response_format"] = {"type": "json_object"}
        return request

    def _chat_once(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any],
        format: ResponseFormat,
        on_token: TokenCallback | None,
    ) -> ChatResult:
        started = time.monotonic()
        deadline = started + self.timeout_s
        parts: list[str] = []
        finish_reason: str | None = None
        usage: Any = None
        answered_by: str | None = None
        stream = None
        try:
            stream = self._client.chat.completions.create(
                **self._request(messages, options, format)
            )
            for chunk in stream:
                answered_by = chunk.model or answered_by
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices[:1]:
                    piece = choice.delta.content if choice.delta is not None else None
                    if piece:
                        parts.append(piece)
                        if on_token is not None:
                            on_token(piece)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                if time.monotonic() > deadline:
                    raise self._timeout(time.monotonic() - started)
        except (ModelTimeout, ModelUnavailable, ModelNotPulled, ModelError):
            raise
        except Exception as exc:
            translated = self._translate(exc, self.model, started)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if stream is not None:
                stream.close()
        if finish_reason is None:
            raise ModelError("the model server closed the stream before the answer was done")
        content = "".join(parts)
        if usage is not None:
            counted = Usage(
                prompt_tokens=usage.prompt_tokens or 0,
                completion_tokens=usage.completion_tokens or 0,
            )
        else:
            # The server sent no usage (older llama.cpp, some proxies): estimate it.
            counted = Usage(
                prompt_tokens=estimate_messages(messages),
                completion_tokens=estimate_tokens(content),
            )
        return ChatResult(
            content=content,
            model=answered_by or self.model,
            provider=self.provider,
            usage=counted,
            duration_ms=round((time.monotonic() - started) * 1000),
            done_reason="length" if finish_reason == "length" else "stop",
        )

    def embed(self, texts: list[str]) -> Embeddings:
        """Vectors for ``texts`` from ``OPENAI_EMBEDDING_MODEL``, in order (``/v1/embeddings``)."""
        started = time.monotonic()
        if not texts:
            return Embeddings(vectors=[], model=self.embedding_model, duration_ms=0)
        try:
            response = self._client.embeddings.create(
                model=self.embedding_model, input=texts, encoding_format="float"
            )
        except Exception as exc:
            translated = self._translate(exc, self.embedding_model, started)
            if translated is exc:
                raise
            raise translated from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return Embeddings(
            vectors=[list(item.embedding) for item in ordered],
            model=self.embedding_model,
            duration_ms=round((time.monotonic() - started) * 1000),
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
        )

    def _get_json(self, url: str) -> Any:
        return self._client.get(url, cast_to=object)

    def _props(self) -> dict[str, Any] | None:
        """llama.cpp's ``/props``, or None from a server that has none."""
        import openai

        try:
            props = self._get_json(f"{self.root_url}/props")
        except openai.APIStatusError:
            return None
        return props if isinstance(props, dict) else None

    def _models(self) -> list[Any]:
        return list(self._client.models.list().data)

    def context_length(self) -> int:
        """The server's context window (cached per client).

        llama.cpp's ``/props`` (``default_generation_settings.n_ctx``), else vLLM's
        ``max_model_len`` in ``/v1/models``, else 8192.
        """
        if self._context_length is not None:
            return self._context_length
        started = time.monotonic()
        try:
            length = self._read_context_length()
        except Exception as exc:
            translated = self._translate(exc, self.model, started)
            if translated is exc:
                raise
            raise translated from exc
        self._context_length = length
        return length

    def _read_context_length(self) -> int:
        import openai

        props = self._props()
        settings = (props or {}).get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n_ctx, int) and n_ctx > 0:
            return n_ctx
        try:
            models = self._models()
        except openai.APIStatusError:
            models = []
        lengths = [getattr(m, "max_model_len", None) for m in models if m.id == self.model]
        lengths = lengths or [getattr(m, "max_model_len", None) for m in models[:1]]
        if lengths and isinstance(lengths[0], int) and lengths[0] > 0:
            return lengths[0]
        return FALLBACK_CONTEXT_LENGTH

    def _version(self, props: dict[str, Any] | None) -> str | None:
        import openai

        if props and props.get("build_info"):
            return f"llama.cpp {props['build_info']}"
        try:
            answer = self._get_json(f"{self.root_url}/version")
        except (openai.APIStatusError, openai.APIConnectionError):
            return None
        version = answer.get("version") if isinstance(answer, dict) else None
        return str(version) if version else None

    def health(self) -> dict[str, Any]:
        """The models the server lists, its version when it says, and the configured model.

        Raises
        ------
        ModelUnavailable
            The server is unreachable.
        ModelNotPulled
            The server is up but does not serve ``OPENAI_MODEL``.
        ModelError
            The server refused ``OPENAI_API_KEY``.
        """
        started = time.monotonic()
        try:
            ids = [m.id for m in self._models()]
            props = self._props()
            version = self._version(props)
        except Exception as exc:
            raise self._translate(exc, self.model, started) from exc
        if self.model not in ids:
            # llama.cpp's server runs one model and answers whatever name is asked for.
            if not (props is not None and len(ids) == 1):
                raise self._not_served(self.model)
        return {"version": version, "model": self.model, "models": ids}

    def close(self) -> None:
        self._client.close()
