"""One ``Settings`` read from the environment and ``.env``.

Every variable is documented in ``.env.example`` and in the README's table. A
malformed value raises :class:`~common.errors.ConfigError` with one line naming the
variable; the value itself is never echoed, since URLs can carry passwords.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError

_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("postgresql", "postgres"),
    "REDIS_URL": ("redis", "rediss", "unix"),
    "MONGODB_URL": ("mongodb", "mongodb+srv"),
    "QDRANT_URL": ("http", "https"),
    "OLLAMA_HOST": ("http", "https"),
    "OPENAI_BASE_URL": ("http", "https"),
    "JOB_QUEUE_URL": ("https", "http"),
    "FIGMA_API_URL": ("https", "http"),
}

PositiveFloat = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """The whole configuration. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    # Stores: unset URL -> embedded default (local server only; required on Lambda).
    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    REDIS_KEY_PREFIX: str = "ao:"
    MONGODB_URL: str | None = None
    MONGODB_DB: str = "orchestrator"
    QDRANT_URL: str | None = None
    QDRANT_API_KEY: SecretStr | None = None
    QDRANT_PATH: Path | None = None
    QDRANT_COLLECTION_PREFIX: str = ""

    # Model provider: "auto" (local default) picks Ollama when it answers, else the
    # embedded model when its extra is installed, else Ollama (whose 503 says what to do).
    MODEL_PROVIDER: Literal["auto", "ollama", "openai", "embedded"] = "auto"
    # Where embeddings come from; "auto": the model provider when it can embed, else
    # the embedded embedder that ships its weights (no server, no download).
    EMBEDDING_PROVIDER: Literal["auto", "ollama", "openai", "embedded"] = "auto"
    MAX_ATTEMPTS: int = Field(3, ge=1, le=10)
    # Redis L0 cache of model answers; 0 turns it off.
    CACHE_TTL_SECONDS: int = Field(86_400, ge=0)

    # Model server.
    OLLAMA_HOST: str = "http://127.0.0.1:11434"
    OLLAMA_MODEL: str = "qwen2.5-coder:7b"
    EMBEDDING_MODEL: str = "nomic-embed-text"
    EMBEDDING_DIM: int = Field(768, gt=0)
    OLLAMA_TIMEOUT: PositiveFloat = 120.0
    OLLAMA_CONNECT_TIMEOUT: PositiveFloat = 5.0
    OLLAMA_KEEP_ALIVE: str = "5m"

    # Any OpenAI-compatible server (llama.cpp server, vLLM, LM Studio).
    OPENAI_BASE_URL: str | None = None
    OPENAI_API_KEY: SecretStr | None = None
    # Model names there; unset: OLLAMA_MODEL and EMBEDDING_MODEL.
    OPENAI_MODEL: str | None = None
    OPENAI_EMBEDDING_MODEL: str | None = None

    # The embedded provider (the "embedded" extra): a GGUF file run by llama.cpp.
    # Unset: the gemma3-270m model shipped on PyPI, assembled under DATA_DIR/models.
    EMBEDDED_MODEL_PATH: Path | None = None
    EMBEDDED_CONTEXT_LENGTH: int = Field(4096, ge=512)

    # Local server and limits.
    DATA_DIR: Path = Path(".data")
    HOST: str = "127.0.0.1"
    PORT: int = Field(8000, ge=0, le=65535)
    MAX_BODY_BYTES: int = Field(1_048_576, gt=0)
    RATE_LIMIT_PER_MINUTE: int = Field(60, ge=0)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Jobs (common/jobs): an SQS queue when JOB_QUEUE_URL is set (AWS), else a Redis
    # stream. A running job's worker renews a JOB_LEASE_SECONDS lease every third of
    # it; an expired lease means the worker died. Its stream entry is reclaimed after
    # JOB_RECLAIM_IDLE_SECONDS idle; every JOB_SWEEP_SECONDS (0: never) a worker
    # re-sends jobs whose message was lost (queued JOB_REQUEUE_SECONDS ago).
    JOB_QUEUE_URL: str | None = None
    JOB_CONCURRENCY: int = Field(2, ge=0, le=64)  # jobs at once per worker; 0: no local worker
    JOB_MAX_ATTEMPTS: int = Field(3, ge=1, le=10)
    JOB_LEASE_SECONDS: PositiveFloat = 30.0
    JOB_RECLAIM_IDLE_SECONDS: PositiveFloat = 45.0
    JOB_SWEEP_SECONDS: float = Field(60.0, ge=0)
    JOB_REQUEUE_SECONDS: PositiveFloat = 300.0

    # /api/figma/analyze: Figma's REST API (tests point it at a double on loopback);
    # the largest Figma file taken, uploaded (this route's own body limit, in place of
    # MAX_BODY_BYTES) or fetched; seconds for a whole fetch.
    FIGMA_API_URL: str = "https://api.figma.com"
    FIGMA_MAX_BODY_BYTES: int = Field(64 * 1024 * 1024, gt=0)
    FIGMA_TIMEOUT: PositiveFloat = 60.0

    # Project storage (common/storage): files under DATA_DIR/storage. UPLOAD_MAX_BYTES
    # is the upload chunk route's own body limit (streamed to disk, never held);
    # STORAGE_QUOTA_BYTES what one key may keep; the UNPACK_* caps refuse bombs.
    UPLOAD_MAX_BYTES: int = Field(8 * 1024**3, gt=0)
    STORAGE_QUOTA_BYTES: int = Field(20 * 1024**3, gt=0)
    UNPACK_MAX_FILE_BYTES: int = Field(1024**3, gt=0)
    UNPACK_MAX_TOTAL_BYTES: int = Field(8 * 1024**3, gt=0)
    UNPACK_MAX_RATIO: PositiveFloat = 200.0
    UNPACK_MAX_FILES: int = Field(200_000, gt=0)
    # Set (AWS: ProjectsBucket): files live in this S3 bucket instead, and an upload's
    # bytes go straight to S3 by presigned multipart part URLs, valid
    # UPLOAD_URL_EXPIRES_SECONDS (a status call presigns the missing parts again), in
    # parts of UPLOAD_PART_BYTES (S3: 5 MiB at least; grown to stay within 10,000 parts).
    PROJECTS_BUCKET: str | None = None
    UPLOAD_URL_EXPIRES_SECONDS: int = Field(3600, ge=60, le=7 * 86_400)
    UPLOAD_PART_BYTES: int = Field(64 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)

    # WebSockets (common/ws). /ws/monitoring/stream gets a sample every
    # MONITOR_INTERVAL_MS (one process samples; on AWS a scheduled function, once a
    # minute); one every MONITOR_PERSIST_SECONDS (0: none) goes to the metrics table.
    # Each (route, sid) keeps its last WS_EVENT_STREAM_MAXLEN numbered events for
    # `since` replay. A connection's entry in the table outlives API Gateway's 2-hour
    # limit, so a live connection is never dropped from it.
    MONITOR_INTERVAL_MS: int = Field(1000, ge=10)
    MONITOR_PERSIST_SECONDS: float = Field(60.0, ge=0)
    WS_EVENT_STREAM_MAXLEN: int = Field(1000, ge=10)
    WS_CONNECTION_TTL_SECONDS: int = Field(7800, gt=7200)

    # /ws/ide/terminal/{sid} (local server only: Lambda cannot hold a pty). A shell
    # with no input for TERMINAL_IDLE_SECONDS is closed (4408); after its last client
    # left it lives TERMINAL_GRACE_SECONDS for a reattach, then its processes are killed.
    TERMINAL_ENABLED: bool = True
    TERMINAL_IDLE_SECONDS: PositiveFloat = 900.0
    TERMINAL_GRACE_SECONDS: float = Field(30.0, ge=0)
    # The shell; unset: /bin/bash, else /bin/sh.
    TERMINAL_SHELL: str | None = None

    # Git (common/git). SECRET_KEY encrypts stored Git tokens; unset on the local
    # server, one is generated into DATA_DIR/secret.key (0600); required on Lambda.
    # Remotes on loopback, private or link-local addresses are refused (SSRF) unless
    # ALLOW_PRIVATE_GIT_HOSTS; each git command gets GIT_TIMEOUT seconds.
    SECRET_KEY: SecretStr | None = None
    # Rotation: SECRET_KEY is the new key, SECRET_KEY_PREVIOUS the old one(s), comma
    # separated, still read (MultiFernet) until `python -m common.cli git-credentials
    # rotate` has re-encrypted every token; then drop them.
    SECRET_KEY_PREVIOUS: SecretStr | None = None
    # A KMS key (id, ARN or alias): tokens are then envelope-encrypted with a data key
    # from KMS (SECRET_KEY is still read for tokens stored before; rotate to move them).
    GIT_TOKENS_KMS_KEY_ID: str | None = None
    ALLOW_PRIVATE_GIT_HOSTS: bool = False
    GIT_TIMEOUT: PositiveFloat = 300.0
    # The git-sync scheduler (common/scheduler.py) looks for due projects every
    # GIT_SYNC_INTERVAL_SECONDS on the local server (0: not started there); on AWS an
    # EventBridge rule runs it every 5 minutes.
    GIT_SYNC_INTERVAL_SECONDS: float = Field(60.0, ge=0)

    # A project's own dependencies (common/environments), under DATA_DIR/envs: each
    # install gets ENV_BUILD_TIMEOUT_S; a project's environments together stay under
    # ENV_MAX_BYTES (older ones evicted). Wheels only unless ENV_ALLOW_SDIST: building
    # an sdist runs the package's code on the server, outside the sandbox.
    ENV_BUILD_TIMEOUT_S: PositiveFloat = 600.0
    ENV_MAX_BYTES: int = Field(2 * 1024**3, gt=0)
    ENV_ALLOW_SDIST: bool = False

    @field_validator("OLLAMA_HOST", mode="before")
    @classmethod
    def _ollama_scheme(cls, value: object) -> object:
        # Ollama itself accepts "host:port"; so do we, as the ollama client does.
        if isinstance(value, str) and value and "://" not in value:
            return f"http://{value}"
        return value

    @field_validator(
        "DATABASE_URL",
        "REDIS_URL",
        "MONGODB_URL",
        "QDRANT_URL",
        "OLLAMA_HOST",
        "OPENAI_BASE_URL",
        "JOB_QUEUE_URL",
        "FIGMA_API_URL",
        mode="after",
    )
    @classmethod
    def _url_scheme(cls, value: str | None, info: object) -> str | None:
        if value in (None, ""):
            return None
        name = getattr(info, "field_name", "")
        schemes = _URL_SCHEMES[name]
        scheme = urlsplit(value).scheme
        if scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes)
            raise ValueError(f"must start with {allowed}")
        return value

    @property
    def on_lambda(self) -> bool:
        return "AWS_LAMBDA_FUNCTION_NAME" in os.environ

    @property
    def qdrant_path(self) -> Path:
        return self.QDRANT_PATH or self.DATA_DIR / "qdrant"


def load_settings(env_file: str | None = None) -> Settings:
    """Read and validate the configuration.

    Parameters
    ----------
    env_file:
        Path of the dotenv file; defaults to ``$ENV_FILE`` or ``.env``. An empty
        string reads the environment only (the test suite does this).

    Raises
    ------
    ConfigError
        One line naming every malformed variable.
    """
    if env_file is None:
        env_file = os.environ.get("ENV_FILE", ".env")
    try:
        return Settings(_env_file=env_file or None)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return load_settings()
