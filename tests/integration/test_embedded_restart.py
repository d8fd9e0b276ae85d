"""Embedded defaults keep their data across a stop and a start."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import load_settings
from common.stores.embedded import start_embedded
from tests.utils.stores import environ_without_stores


@pytest.mark.slow
def test_data_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg
    import redis
    from pymongo import MongoClient

    for name in set(__import__("os").environ) - set(environ_without_stores()):
        monkeypatch.delenv(name)
    settings = load_settings("").model_copy(update={"DATA_DIR": tmp_path})

    first = start_embedded(settings)
    try:
        assert set(first.urls) == {"DATABASE_URL", "REDIS_URL", "MONGODB_URL"}
        with psycopg.connect(first.urls["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('pg')")
        client = redis.Redis.from_url(first.urls["REDIS_URL"])
        client.set("kept", "redis")
        client.close()
        with MongoClient(first.urls["MONGODB_URL"]) as mongo:
            mongo.kept.things.insert_one({"v": "mongo"})
    finally:
        first.stop()

    second = start_embedded(settings)
    try:
        with psycopg.connect(second.urls["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("pg",)]
        client = redis.Redis.from_url(second.urls["REDIS_URL"])
        assert client.get("kept") == b"redis"
        client.close()
        with MongoClient(second.urls["MONGODB_URL"]) as mongo:
            assert mongo.kept.things.find_one({}, {"_id": 0}) == {"v": "mongo"}
    finally:
        second.stop()
