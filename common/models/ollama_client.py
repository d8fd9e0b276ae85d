"""The Ollama provider, over the official ``ollama`` package.

Always streams, even when the caller only wants the whole answer: streaming is
what lets us enforce a total deadline, show tokens as they come, and keep what a
model said before it stalled.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import ollama

from common.config import Settings
from common.errors import ModelError, ModelNotPulled, ModelTimeout, ModelUnavailable
from common.logs import get_logger, redact_url
from common.models.base import ChatResult, Message, ResponseFormat, TokenCallback, Usage

log = get_logger("models.ollama")

# Ollama's body for a model it does not have; older releases quoted with '.
_MODEL_NOT_FOUND = re.compile(r"model [\"'][^\"']*[\"'] not found")


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

    def __init__(
        self,
        *,
        host: str,
        model: str,
        timeout_s: float,
        connect_timeout_s: float,
        keep_alive: str | None = None,
    ) -> None:
        self.host = host
        self.model = model
        self.timeout_s = timeout_s
        self.keep_alive = keep_alive
        # The read timeout bounds the wait for each chunk (the first token included);
        # the loop in chat() bounds the whole answer.
        self._client = ollama.Client(
            host=host, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OllamaModelClient:
        return cls(
            host=settings.OLLAMA_HOST,
            model=settings.OLLAMA_MODEL,
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

        Raises
        ------
        ModelUnavailable, ModelNotPulled, ModelTimeout, ModelError
        """
        started = time.monotonic()
        deadline = started + self.timeout_s
        parts: list[str] = []
        final: Any = None
        stream = None
        try:
            stream = self._client.chat(
                model=self.model,
                messages=[m.model_dump() for m in messages],
                stream=True,
                options=options,
                format=format,
                keep_alive=self.keep_alive,
            )
            for chunk in stream:
                piece = chunk.message.content or ""
                if piece:
                    parts.append(piece)
                    if on_token is not None:
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
        usage = Usage(
            prompt_tokens=final.prompt_eval_count or 0,
            completion_tokens=final.eval_count or 0,
        )
        return ChatResult(
            content="".join(parts),
            model=final.model or self.model,
            usage=usage,
            duration_ms=round((time.monotonic() - started) * 1000),
            done_reason=final.done_reason,
        )

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
            raw = self._client._request_raw("GET", "/api/version")  # type: ignore[no-untyped-call]
            version = raw.json().get("version")
            names = {m.model for m in self._client.list().models}
        except Exception as exc:
            translated = self._translate(exc, self.model, started)
            raise translated from exc
        wanted = {self.model, f"{self.model}:latest"}
        if not names & wanted:
            raise self._not_pulled(self.model)
        return {"version": version, "model": self.model}

    def close(self) -> None:
        self._client._client.close()
