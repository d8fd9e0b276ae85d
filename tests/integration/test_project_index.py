"""A project's stored files and its index job, on real stores (MongoDB, Qdrant, PostgreSQL).

The index job's runner is called as a worker would call it; the embedder is the
embedded MiniLM (real vectors) or a counting wrapper around it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import pytest

from common.errors import ModelUnavailable
from common.memory import embedders
from common.memory.embedders import EmbeddedEmbedder
from tests.utils.lambda_events import invoke, response_json

SOURCES = {
    "shop/cart.py": (
        "def cart_total(prices: list[float], discount: float = 0.0) -> float:\n"
        '    """The cart\'s total after a discount."""\n'
        "    return round(sum(prices) * (1 - discount), 2)\n"
    ),
    "shop/mail.py": (
        "import smtplib\n\n\n"
        "def send_receipt(address: str, total: float) -> None:\n"
        '    """Email the receipt of an order to the customer."""\n'
        "    with smtplib.SMTP('localhost') as server:\n"
        "        server.sendmail('shop@example.com', [address], f'Total: {total}')\n"
    ),
    "README.md": "# Shop\n\nA small shop backend.\n",
}


class Counting:
    """The embedded embedder, recording how many texts each call embeds; optionally
    failing from the ``fail_after``-th call on."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.inner = EmbeddedEmbedder()
        self.calls: list[int] = []
        self.fail_after = fail_after

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise ModelUnavailable("the embedder went away")
        self.calls.append(len(texts))
        return self.inner.embed(texts)


class Ctx:
    """What a job runner uses of JobContext."""

    def __init__(self) -> None:
        self.job_id = uuid.uuid4()
        self.steps: list[tuple[str, float]] = []

    def progress(self, step: str, percent: float, message: str = "") -> None:
        self.steps.append((step, percent))

    def raise_if_cancelled(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _embedded(set_env: Any) -> Iterator[None]:
    set_env(EMBEDDING_PROVIDER="embedded")
    embedders.reset()
    yield
    embedders.reset()


@pytest.fixture
def owner(api_key: str) -> tuple[str, UUID, UUID]:
    from common.auth import authenticate
    from common.projects import create_project
    from common.stores.postgres import get_postgres
    from common.stores.projects_store import get_project_store

    key_id = authenticate(api_key, store=get_postgres()).key_id
    project = create_project(name="shop", owner_key_id=key_id, store=get_project_store())
    return api_key, key_id, project.id


def commit(key_id: UUID, project_id: UUID, files: dict[str, str], revision: str) -> Any:
    """Files as a source with a revision (what a git sync or an upload does), indexed
    by a job queued for them."""
    from common.storage.tree import Source, commit_tree, write_texts

    sizes = write_texts(project_id, files)

    return commit_tree(
        project_id=project_id,
        owner_key_id=key_id,
        names=sorted(files),
        sizes=sizes,
        hashes={p: hashlib.sha256(t.encode()).hexdigest() for p, t in files.items()},
        texts=files,
        source=Source(kind="git", revision=revision, ref="main"),
        replace=True,
    )


def run_index_job(project_id: UUID, embedder: Any) -> dict[str, Any]:
    from unittest import mock

    from common.memory import project_index

    with mock.patch.object(project_index, "get_embedder", lambda: embedder):
        return project_index.run_job({"project_id": str(project_id)}, Ctx())  # type: ignore[arg-type]


def detail(key: str, project_id: UUID) -> dict[str, Any]:
    response = invoke("projects_get", "GET", f"/api/projects/{project_id}", key)
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = response_json(response)
    return body


def search(key: str, project_id: UUID, query: str) -> dict[str, Any]:
    response = invoke(
        "projects_search",
        "POST",
        f"/api/projects/{project_id}/search",
        key,
        body={"query": query, "k": 3},
    )
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = response_json(response)
    return body


def test_a_change_queues_an_index_job_that_reads_only_what_changed(
    owner: tuple[str, UUID, UUID],
) -> None:
    key, key_id, project_id = owner
    # Given files committed at a first revision: an index job is queued for them
    change = commit(key_id, project_id, SOURCES, "a" * 40)
    assert change.added == sorted(SOURCES) and change.removed == []
    shown = detail(key, project_id)
    assert shown["source"]["kind"] == "git" and shown["source"]["revision"] == "a" * 40
    assert shown["index"]["state"] == "queued" and shown["index"]["pending_revision"] == "a" * 40
    queued_job = shown["index"]["job_id"]
    assert queued_job
    # When the job runs
    counting = Counting()
    report = run_index_job(project_id, counting)
    # Then every file is read and every chunk embedded once; the state says so
    assert report["files_read"] == 3 and report["embedded"] == report["chunks_total"] >= 3
    shown = detail(key, project_id)["index"]
    assert shown["state"] == "ready" and shown["revision"] == "a" * 40
    assert shown["chunks"] == report["chunks_total"] and shown["embedder"] == counting.name
    # And a search answers from that revision
    found = search(key, project_id, "email the receipt to the customer")
    assert found["revision"] == "a" * 40 and found["hits"][0]["path"] == "shop/mail.py"

    # When one file changes and one is deleted at the next revision
    second = {
        "shop/cart.py": SOURCES["shop/cart.py"].replace("round(", "int(").replace(", 2)", ")"),
        "shop/mail.py": SOURCES["shop/mail.py"],
    }
    change = commit(key_id, project_id, second, "b" * 40)
    assert change.changed == ["shop/cart.py"] and change.removed == ["README.md"]
    counting = Counting()
    report = run_index_job(project_id, counting)
    # Then only the changed file is read and embedded; the deleted file's chunks go
    assert report["files_read"] == 1
    assert report["embedded"] == sum(counting.calls) >= 1
    assert report["deleted"] >= 2  # the old cart chunk and the README's
    found = search(key, project_id, "shop backend readme")
    assert all(hit["path"] != "README.md" for hit in found["hits"])
    assert found["revision"] == "b" * 40

    # When the job runs again on the unchanged tree, it reads and embeds nothing
    counting = Counting()
    report = run_index_job(project_id, counting)
    assert report["files_read"] == 0 and report["embedded"] == 0 and counting.calls == []


def test_a_failed_run_leaves_searches_on_the_last_completed_index(
    owner: tuple[str, UUID, UUID],
) -> None:
    key, key_id, project_id = owner
    commit(key_id, project_id, SOURCES, "a" * 40)
    run_index_job(project_id, Counting())
    # Given a new revision with many new chunks, and an embedder that dies after one batch
    many = {f"gen/f{i}.py": f"def handler_{i}(x):\n    return x * {i}\n" for i in range(200)}
    commit(key_id, project_id, {**SOURCES, **many}, "c" * 40)
    with pytest.raises(ModelUnavailable):
        run_index_job(project_id, Counting(fail_after=1))
    # Then the state says it failed, with the error, and the revision stays the old one
    state = detail(key, project_id)["index"]
    assert state["state"] == "failed" and state["revision"] == "a" * 40
    assert state["last_error"]["code"] == "model_unavailable"
    # And searches see none of the half-written run's points
    found = search(key, project_id, "handler returns x times")
    assert found["revision"] == "a" * 40
    assert all(not hit["path"].startswith("gen/") for hit in found["hits"])
    # When the job runs again, it completes and the new files are found
    run_index_job(project_id, Counting())
    found = search(key, project_id, "def handler_7 returns x times 7")
    assert found["revision"] == "c" * 40
    assert any(hit["path"].startswith("gen/") for hit in found["hits"])


def test_going_back_to_the_completed_files_after_a_failed_run_drops_its_points(
    owner: tuple[str, UUID, UUID],
) -> None:
    from common.memory.index import collection_for
    from common.stores.qdrant_store import get_qdrant

    key, key_id, project_id = owner
    commit(key_id, project_id, SOURCES, "a" * 40)
    run_index_job(project_id, Counting())
    # Given a run on new files that dies after writing one batch of their points
    many = {f"gen/f{i}.py": f"def handler_{i}(x):\n    return x * {i}\n" for i in range(200)}
    commit(key_id, project_id, {**SOURCES, **many}, "c" * 40)
    with pytest.raises(ModelUnavailable):
        run_index_job(project_id, Counting(fail_after=1))
    # When the tree goes back to the completed run's files (an unchanged tree by its
    # digest) and the job runs
    commit(key_id, project_id, SOURCES, "d" * 40)
    report = run_index_job(project_id, Counting())
    # Then the index is not taken as unchanged: the failed run's points are gone
    assert report["deleted"] >= 64, report
    records, _ = get_qdrant().scroll(
        collection_for(project_id), limit=1000, with_payload=["path"], with_vectors=False
    )
    paths = {(r.payload or {}).get("path") for r in records}
    assert not any(str(path).startswith("gen/") for path in paths), paths
    assert detail(key, project_id)["index"]["revision"] == "d" * 40
    # And the next run on the same files is answered from the meta point alone
    again = run_index_job(project_id, Counting())
    assert again["files_read"] == 0 and again["deleted"] == 0
    assert again["chunks_total"] == report["chunks_total"]


def test_binary_and_oversized_files_are_stored_and_listed_but_not_read_as_code(
    owner: tuple[str, UUID, UUID],
) -> None:
    from common.storage.tree import TEXT_FILE_MAX_BYTES, Source, commit_tree, files_dir
    from common.stores.mongo import get_mongo

    key, key_id, project_id = owner
    root = files_dir(project_id)
    root.mkdir(parents=True, exist_ok=True)
    blobs = {
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "latin1.txt": "caf\xe9".encode("latin-1"),
        "big.sql": b"-- dump\n" * (TEXT_FILE_MAX_BYTES // 8 + 1),
        "ok.py": b"x = 1\n",
    }
    for name, data in blobs.items():
        (root / name).write_bytes(data)

    commit_tree(
        project_id=project_id,
        owner_key_id=key_id,
        names=sorted(blobs),
        sizes={n: len(d) for n, d in blobs.items()},
        hashes={n: hashlib.sha256(d).hexdigest() for n, d in blobs.items()},
        texts={"ok.py": "x = 1\n"},
        source=Source(kind="upload", revision="d" * 64, ref="site.tar.gz"),
        replace=True,
        queue_index=False,
    )
    files = {f["path"]: f for f in detail(key, project_id)["files"]}
    assert files["ok.py"]["kind"] == "text" and files["ok.py"]["reason"] is None
    assert files["logo.png"]["kind"] == files["latin1.txt"]["kind"] == "binary"
    assert "not read as code" in files["logo.png"]["reason"]
    assert files["big.sql"]["kind"] == "oversized" and "2 MB" in files["big.sql"]["reason"]
    read = {d["path"] for d in get_mongo()["project_files"].find({"project_id": str(project_id)})}
    assert read == {"ok.py"}


def test_reindex_with_no_body_is_a_job_and_files_in_a_body_still_index_at_once(
    owner: tuple[str, UUID, UUID],
) -> None:
    key, _, project_id = owner
    path = f"/api/projects/{project_id}/index"
    # Files in a body: indexed in the request, kept as the project's files
    response = invoke("projects_index", "POST", path, key, body={"files": SOURCES})
    assert response["statusCode"] == 200, response
    report = response_json(response)
    shown = detail(key, project_id)
    assert shown["source"]["kind"] == "files" and report["revision"] == shown["source"]["revision"]
    assert shown["index"]["state"] == "ready" and {f["path"] for f in shown["files"]} == set(
        SOURCES
    )
    # No body, or an empty one: a job
    for body in (None, {}):
        response = invoke("projects_index", "POST", path, key, body=body)
        assert response["statusCode"] == 202, response
        accepted = response_json(response)
        assert detail(key, project_id)["index"]["job_id"] == accepted["job_id"]
    # Another key's project is a 404 either way
    from common.auth import create_key
    from common.stores.postgres import get_postgres

    other = create_key(store=get_postgres(), name="other").key
    response = invoke("projects_index", "POST", path, other, body={})
    assert response["statusCode"] == 404
