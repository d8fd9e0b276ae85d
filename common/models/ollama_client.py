"""The Ollama provider, over the official ``ollama`` package.

Always streams, even when the caller only wants the whole answer: streaming is
what lets us enforce a total deadline, show tokens as they come, and keep what a
model said before it stalled.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar
from typing import Any

import httpx
import ollama

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
    choose_num_ctx,
    estimate_messages,
    fit_messages,
)

log = get_logger("models.ollama")

# Ollama's body for a model it does not have; older releases quoted with '.
_MODEL_NOT_FOUND = re.compile(r"model [\"'][^\"']*[\"'] not found")


# When /api/show names no context length (old servers): Ollama's own default window.
FALLBACK_CONTEXT_LENGTH = 4096


class _NoCookies(CookieJar):
    """Ollama sets no cookies: skip parsing every answer's headers for them."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass


def _reuse_urls(client: ollama.Client) -> None:
    """Parse each endpoint's URL once per client, not once per call.

    ``ollama`` passes a path ("/api/chat") that httpx parses and joins to the base
    URL again on every request: a tenth of the client's CPU for a short answer.
    httpx URLs are immutable, so the joined one can be reused as it is.
    """
    http: Any = getattr(client, "_client", None)
    merge = getattr(http, "_merge_url", None)
    if merge is None:  # another httpx or ollama layout: keep its own behaviour
        return
    merged: dict[str, httpx.URL] = {}

    def merge_once(url: httpx.URL | str) -> httpx.URL:
        if not isinstance(url, str):
            return merge(url)  # type: ignore[no-any-return]
        found = merged.get(url)
        if found is None:
            found = merged[url] = merge(url)
        return found

    http._merge_url = merge_once


class OllamaModelClient:
    """Chat with one model on one Ollama server.

    Parameters
    ----------
    host:
        ``OLLAMA_HOST``.
    model:
        ``OLLAMA_MODEL``.
    timeout_s:
        Total time for one call, first byte to last token (``OLLAMA_TIMEOUT``).
    connect_timeout_s:
        Time to open the connection (``OLLAMA_CONNECT_TIMEOUT``).
    """

    provider = "ollama"

    def __init__(
        self,
        *,
        host: str,
        model: str,
        embedding_model: str = "nomic-embed-text",
        timeout_s: float,
        connect_timeout_s: float,
        keep_alive: str | None = None,
    ) -> None:
        self.host = host
        self.model = model
        self.embedding_model = embedding_model
        self._context_length: int | None = None
        self.timeout_s = timeout_s
        self.keep_alive = keep_alive
        self._http_timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._idle: list[ollama.Client] = []
        self._clients: list[ollama.Client] = []
        self._clients_lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None

    @contextmanager
    def _client(self) -> Iterator[ollama.Client]:
        """A client of its own for one call, back to the idle list afterwards.

        One shared client funnels every call through one connection-pool lock; under
        50 concurrent calls threads spent more time queueing for that lock than the
        call took. A client per call keeps its own keep-alive connection and never
        waits on another thread. They are not tied to threads: the thread pool ends
        a worker after 10 s idle, and a client per thread meant a new client (17 ms
        of CPU for its TLS context, a new connection) for every thread of every
        burst after a quiet moment, and the old ones kept open until shutdown.
        """
        try:
            client = self._idle.pop()  # last in, first out: its connection is the warmest
        except IndexError:
            client = self._new_client()
        try:
            yield client
        finally:
            if not client._client.is_closed:  # close() ran meanwhile: let it go
                self._idle.append(client)

    def _new_client(self) -> ollama.Client:
        with self._clients_lock:
            if self._ssl_context is None:
                # httpx builds one per client otherwise: 17 ms of CPU each time.
                self._ssl_context = httpx.create_ssl_context()
            # The read timeout bounds the wait for each chunk (or a whole unstreamed
            # answer); the loop in _chat_once() bounds a streamed one.
            client = ollama.Client(
                host=self.host,
                timeout=self._http_timeout,
                verify=self._ssl_context,
                cookies=_NoCookies(),
            )
            _reuse_urls(client)
            self._clients.append(client)
        return client

    @classmethod
    def from_settings(cls, settings: Settings) -> OllamaModelClient:
        return cls(
            host=settings.OLLAMA_HOST,
            model=settings.OLLAMA_MODEL,
            embedding_model=settings.EMBEDDING_MODEL,
            timeout_s=settings.OLLAMA_TIMEOUT,
            connect_timeout_s=settings.OLLAMA_CONNECT_TIMEOUT,
            keep_alive=settings.OLLAMA_KEEP_ALIVE or None,
        )

    # -- errors ---------------------------------------------------------------

    def _unreachable(self) -> ModelUnavailable:
        return ModelUnavailable(
            f"the model server at {redact_url(self.host)} (OLLAMA_HOST) is unreachable:"
            " start it with `ollama serve`, or set OLLAMA_HOST to where it runs",
            details={"fix": "ollama serve", "ollama_host": redact_url(self.host)},
        )

    def _not_pulled(self, model: str) -> ModelNotPulled:
        return ModelNotPulled(
            f"the model {model} is not pulled on {redact_url(self.host)}:"
            f" run `ollama pull {model}`",
            details={"fix": f"ollama pull {model}", "model": model},
        )

    def _timeout(self, waited_s: float) -> ModelTimeout:
        return ModelTimeout(
            f"the model {self.model} did not answer within {self.timeout_s:g} s"
            f" (OLLAMA_TIMEOUT); waited {waited_s:.1f} s",
            details={"timeout_s": self.timeout_s},
        )

    def _translate(self, exc: Exception, model: str, started: float) -> Exception:
        waited = time.monotonic() - started
        host = redact_url(self.host)
        if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            return self._unreachable()
        if isinstance(exc, httpx.TimeoutException):
            return self._timeout(waited)
        if isinstance(exc, ollama.ResponseError):
            text = str(exc.error)
            if exc.status_code == 404:
                # Ollama's own body names the model; a bare "404 page not found" means
                # OLLAMA_HOST points at something else (often a /v1 suffix).
                if _MODEL_NOT_FOUND.search(text) or "try pulling" in text:
                    return self._not_pulled(model)
                return ModelUnavailable(
                    f"{host} (OLLAMA_HOST) does not serve the Ollama API ({text.strip()[:80]}):"
                    " set OLLAMA_HOST to the server root, e.g. http://127.0.0.1:11434,"
                    " with no /v1 or other path",
                    details={"ollama_host": host},
                )
            if exc.status_code >= 500 or exc.status_code == -1:
                return ModelError(f"the model server failed: {text}")
            return ModelError(f"the model server refused the request: {text}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return ModelError(
                f"the model server at {host} closed the connection in the middle of the"
                f" answer after {waited:.1f} s; see the Ollama server log for the cause"
            )
        if isinstance(exc, httpx.TransportError):
            return self._unreachable()
        if isinstance(exc, ValueError):  # JSONDecodeError, pydantic ValidationError
            return ModelUnavailable(
                f"{host} (OLLAMA_HOST) did not answer like an Ollama server: check OLLAMA_HOST",
                details={"ollama_host": host},
            )
        return exc

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

        Unless ``options`` sets ``num_ctx``, the window is chosen from the prompt's
        size plus room for the answer, capped by the model's context length; context
        messages that do not fit are dropped, oldest first. An answer cut by the
        window (``done_reason == "length"`` without a caller's ``num_predict``) or a
        prompt the server truncated is retried once with the model's whole window,
        then returned with ``complete`` False for the caller to report.

        Raises
        ------
        ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        """
        options = dict(options or {})
        limit = self.context_length()
        answer_room = int(options.get("num_predict") or DEFAULT_ANSWER_TOKENS)
        if answer_room < 0:
            answer_room = DEFAULT_ANSWER_TOKENS
        fixed_window = "num_ctx" in options
        sent, dropped = fit_messages(messages, limit=limit, answer_tokens=answer_room)
        estimate = estimate_messages(sent)
        window = (
            int(options["num_ctx"])
            if fixed_window
            else choose_num_ctx(estimate, answer_room, limit)
        )
        total = Usage()
        started = time.monotonic()
        while True:
            result = self._chat_once(
                sent, options={**options, "num_ctx": window}, format=format, on_token=on_token
            )
            total = total + result.usage
            evaluated = result.usage.prompt_tokens
            result.prompt_truncated = estimate > window or (
                estimate > window // 2 and 0 < evaluated < estimate // 2
            )
            cut_by_window = result.done_reason == "length" and "num_predict" not in options
            if fixed_window or window >= limit or not (result.prompt_truncated or cut_by_window):
                break
            log.info(
                "answer did not fit the window; retrying with the whole window",
                extra={"num_ctx": window, "limit": limit, "prompt_estimate": estimate},
            )
            window = limit
        result.usage = total
        result.num_ctx = window
        result.dropped_context = dropped
        result.duration_ms = round((time.monotonic() - started) * 1000)
        return result

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
        final: Any = None
        stream = None
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "options": options,
            "format": format,
            "keep_alive": self.keep_alive,
        }
        # The client goes back to the idle list only once its stream is closed.
        with self._client() as client:
            try:
                if on_token is None:
                    # Nobody watches the tokens: one response instead of a chunk per token
                    # (each parsed into a pydantic object) costs the server far less CPU.
                    # The read timeout (OLLAMA_TIMEOUT) bounds the wait for the whole answer.
                    final = client.chat(**request, stream=False)
                    parts.append(final.message.content or "")
                    if time.monotonic() > deadline:
                        raise self._timeout(time.monotonic() - started)
                else:
                    stream = client.chat(**request, stream=True)
                    for chunk in stream:
                        piece = chunk.message.content or ""
                        if piece:
                            parts.append(piece)
                            on_token(piece)
                        if chunk.done:
                            final = chunk
                            break
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
                if stream is not None and hasattr(stream, "close"):
                    stream.close()
        if final is None:
            raise ModelError("the model server closed the stream before the answer was done")
        return ChatResult(
            content="".join(parts),
            model=final.model or self.model,
            provider=self.provider,
            usage=Usage(
                prompt_tokens=final.prompt_eval_count or 0,
                completion_tokens=final.eval_count or 0,
            ),
            duration_ms=round((time.monotonic() - started) * 1000),
            done_reason=final.done_reason,
        )

    def embed(self, texts: list[str]) -> Embeddings:
        """Vectors for ``texts`` from ``EMBEDDING_MODEL``, in order."""
        started = time.monotonic()
        try:
            with self._client() as client:
                response = client.embed(
                    model=self.embedding_model, input=texts, keep_alive=self.keep_alive
                )
        except Exception as exc:
            translated = self._translate(exc, self.embedding_model, started)
            if translated is exc:
                raise
            raise translated from exc
        return Embeddings(
            vectors=[list(v) for v in response.embeddings],
            model=self.embedding_model,
            duration_ms=round((time.monotonic() - started) * 1000),
            prompt_tokens=response.prompt_eval_count or 0,
        )

    def context_length(self) -> int:
        """The chat model's context length from ``/api/show`` (cached per client)."""
        if self._context_length is None:
            started = time.monotonic()
            try:
                with self._client() as client:
                    info = client.show(self.model).modelinfo or {}
            except Exception as exc:
                translated = self._translate(exc, self.model, started)
                if translated is exc:
                    raise
                raise translated from exc
            lengths = [v for k, v in info.items() if k.endswith(".context_length")]
            self._context_length = int(lengths[0]) if lengths else FALLBACK_CONTEXT_LENGTH
        return self._context_length

    def health(self) -> dict[str, Any]:
        """Server version and whether the configured model is pulled.

        Raises
        ------
        ModelUnavailable
            The server is unreachable.
        ModelNotPulled
            The server is up but does not have ``OLLAMA_MODEL``.
        """
        started = time.monotonic()
        try:
            with self._client() as client:
                raw = client._request_raw("GET", "/api/version")  # type: ignore[no-untyped-call]
                version = raw.json().get("version")
                names = {m.model for m in client.list().models}
        except Exception as exc:
            translated = self._translate(exc, self.model, started)
            raise translated from exc
        wanted = {self.model, f"{self.model}:latest"}
        if not names & wanted:
            raise self._not_pulled(self.model)
        return {"version": version, "model": self.model}

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._idle = []
        for client in clients:
            client._client.close()
