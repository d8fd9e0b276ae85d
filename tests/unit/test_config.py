import pytest

from common.config import load_settings
from common.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "MONGODB_URL",
        "QDRANT_URL",
        "OLLAMA_HOST",
        "RATE_LIMIT_PER_MINUTE",
        "MAX_BODY_BYTES",
        "OLLAMA_TIMEOUT",
        "LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_need_no_environment() -> None:
    settings = load_settings("")

    assert settings.DATABASE_URL is None and settings.REDIS_URL is None
    assert settings.OLLAMA_MODEL == "qwen2.5-coder:7b"
    assert settings.EMBEDDING_MODEL == "nomic-embed-text"
    assert settings.OLLAMA_HOST == "http://127.0.0.1:11434"
    assert settings.qdrant_path == settings.DATA_DIR / "qdrant"


def test_ollama_host_without_scheme_is_accepted_like_ollama_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")

    assert load_settings("").OLLAMA_HOST == "http://gpu-box:11434"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RATE_LIMIT_PER_MINUTE", "lots", "RATE_LIMIT_PER_MINUTE: Input should be a valid integer"),
        ("MAX_BODY_BYTES", "0", "MAX_BODY_BYTES: Input should be greater than 0"),
        ("OLLAMA_TIMEOUT", "-1", "OLLAMA_TIMEOUT: Input should be greater than 0"),
        ("REDIS_URL", "http://x", "REDIS_URL: must start with redis://, rediss://, unix://"),
        ("DATABASE_URL", "mysql://x/db", "DATABASE_URL: must start with postgresql://"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: Input should be"),
    ],
)
def test_malformed_value_fails_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as caught:
        load_settings("")

    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_config_error_never_echoes_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://admin:hunter2-secret@db/x")

    with pytest.raises(ConfigError) as caught:
        load_settings("")

    assert "hunter2" not in str(caught.value)


def test_env_file_is_read_and_environment_wins(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"  # type: ignore[operator]
    env_file.write_text("OLLAMA_MODEL=llama3.2\nRATE_LIMIT_PER_MINUTE=5\n")
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "7")

    settings = load_settings(str(env_file))

    assert settings.OLLAMA_MODEL == "llama3.2"
    assert settings.RATE_LIMIT_PER_MINUTE == 7
