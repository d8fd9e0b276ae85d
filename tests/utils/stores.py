"""The stores one test run uses: the embedded defaults, or servers named by *_URL.

Either way the run gets data no other run sees: its own embedded servers under a
temporary DATA_DIR, or, on shared servers, its own PostgreSQL schema, Redis key
prefix, Mongo database and Qdrant collection prefix, all removed at the end.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from common.config import load_settings
from common.stores.embedded import EmbeddedStores, start_embedded


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@dataclass
class RunStores:
    data_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    env: dict[str, str] = field(default_factory=dict)
    external: list[str] = field(default_factory=list)
    _embedded: EmbeddedStores | None = None

    def start(self) -> RunStores:
        settings = load_settings("")
        self.env = {"DATA_DIR": str(self.data_dir), "ENV_FILE": ""}
        if settings.DATABASE_URL:
            schema = f"t_{self.run_id}"
            self._psql(settings.DATABASE_URL, f'CREATE SCHEMA "{schema}"')
            self.env["DATABASE_URL"] = with_search_path(settings.DATABASE_URL, schema)
            self.external.append("postgres")
        if settings.REDIS_URL:
            self.env["REDIS_URL"] = settings.REDIS_URL
            self.env["REDIS_KEY_PREFIX"] = f"t{self.run_id}:"
            self.external.append("redis")
        if settings.MONGODB_URL:
            self.env["MONGODB_URL"] = with_database(settings.MONGODB_URL, f"t_{self.run_id}")
            self.external.append("mongo")
        if settings.QDRANT_URL:
            self.env["QDRANT_URL"] = settings.QDRANT_URL
            self.env["QDRANT_COLLECTION_PREFIX"] = f"t_{self.run_id}_"
            self.external.append("qdrant")
        else:
            self.env["QDRANT_PATH"] = str(self.data_dir / "qdrant")
        self._embedded = start_embedded(settings.model_copy(update={"DATA_DIR": self.data_dir}))
        self.env.update(self._embedded.urls)
        return self

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
        if "postgres" in self.external:
            self._psql(
                load_settings("").DATABASE_URL or "",
                f'DROP SCHEMA IF EXISTS "t_{self.run_id}" CASCADE',
            )
        if "redis" in self.external:
            import redis

            client = redis.Redis.from_url(self.env["REDIS_URL"])
            keys = list(client.scan_iter(match=self.env["REDIS_KEY_PREFIX"] + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        if "mongo" in self.external:
            from pymongo import MongoClient

            with MongoClient(self.env["MONGODB_URL"]) as client:
                client.drop_database(f"t_{self.run_id}")

    @staticmethod
    def _psql(url: str, sql: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url(scheme: str = "http") -> str:
    """A loopback URL nothing listens on."""
    return f"{scheme}://127.0.0.1:{free_port()}"


STORE_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "MONGODB_URL",
    "MONGODB_DB",
    "QDRANT_URL",
    "QDRANT_PATH",
    "QDRANT_COLLECTION_PREFIX",
)


def environ_without_stores() -> dict[str, str]:
    """This process's environment minus every store variable: a bare laptop."""
    return {k: v for k, v in os.environ.items() if k not in STORE_VARS}
