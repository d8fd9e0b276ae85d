"""Fixtures shared by every tier.

Unit tests touch none of these. Integration and e2e tests get the run's stores
(embedded, or the servers named by *_URL, isolated per run) and one Ollama double.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The suite reads the environment only: a developer's .env must not leak into it.
os.environ["ENV_FILE"] = ""

TIERS = ("unit", "integration", "e2e")


def pytest_collection_finish(session: pytest.Session) -> None:
    # A tier that was asked for and collected nothing is a broken suite, not a pass.
    asked = {Path(str(a)).parts[-1] for a in session.config.args}
    if session.config.getoption("keyword") or session.config.getoption("markexpr"):
        return
    for tier in TIERS:
        if tier in asked or "tests" in asked:
            found = [i for i in session.items if f"/tests/{tier}/" in str(i.path)]
            if not found:
                raise pytest.UsageError(f"tests/{tier} collected no tests")


@pytest.fixture(scope="session")
def run_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.utils.stores import RunStores

    stores = RunStores(data_dir=tmp_path_factory.mktemp("data")).start()
    yield stores
    stores.stop()


@pytest.fixture(scope="session")
def ollama_fake() -> Iterator[object]:
    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def base_env(run_stores: object, ollama_fake: object) -> dict[str, str]:
    """The environment of this run: its stores and the Ollama double."""
    env = dict(run_stores.env)  # type: ignore[attr-defined]
    env.update(
        OLLAMA_HOST=ollama_fake.url,  # type: ignore[attr-defined]
        MODEL_PROVIDER="ollama",
        OLLAMA_TIMEOUT="10",
        OLLAMA_CONNECT_TIMEOUT="2",
        RATE_LIMIT_PER_MINUTE="1000",
    )
    return env


@pytest.fixture(scope="session")
def _session_env(base_env: dict[str, str]) -> Iterator[None]:
    from common.stores import prepare_stores, reset_stores

    with pytest.MonkeyPatch.context() as mp:
        for name, value in base_env.items():
            mp.setenv(name, value)
        reset_stores()
        prepare_stores()
        yield
        reset_stores()


def _reset_all() -> None:
    from common.memory import embedders
    from common.models import reset as reset_model
    from common.stores import reset_stores

    reset_stores()
    reset_model()
    embedders.reset()


@pytest.fixture
def stores(_session_env: None) -> Iterator[None]:
    """The run's stores, in this process's environment; caches reset around the test."""
    yield
    _reset_all()


@pytest.fixture
def ollama(ollama_fake: object, stores: None) -> Iterator[object]:
    """The Ollama double, cleared of scripts and requests, with the default models pulled.

    The L0 cache is emptied too: an answer another test scripted must not come back.
    """
    ollama_fake.reset()  # type: ignore[attr-defined]
    _clear_model_cache()
    yield ollama_fake
    ollama_fake.reset()  # type: ignore[attr-defined]


def _clear_model_cache() -> None:
    from common.behind import flush_behind
    from common.stores.redis_store import get_redis

    # An answer still queued behind an earlier test would land after the delete.
    flush_behind(timeout_s=10)

    redis = get_redis()
    keys = list(redis.client.scan_iter(match=redis.key("l0:*"), count=1000))
    if keys:
        redis.client.delete(*keys)


@pytest.fixture
def set_env(stores: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change settings for one test: ``set_env(RATE_LIMIT_PER_MINUTE="2")``."""

    def apply(**values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        _reset_all()

    return apply


@pytest.fixture
def api_key(stores: None) -> str:
    """A fresh, valid API key."""
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    return create_key(store=get_postgres(), name="pytest").key
