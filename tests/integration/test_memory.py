"""Semantic memory on real Qdrant (local mode, or QDRANT_URL): a real code base, real vectors.

The code base is the ``idna`` package this venv already has; the vectors come from
the embedded embedder (all-MiniLM-L6-v2 shipped as a package), so the ranking
checks are real. The Ollama double's vectors are hashes: good for plumbing only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import idna
import pytest

from common.errors import Conflict
from common.memory import embedders
from common.memory.embedders import EmbeddedEmbedder, ProviderEmbedder, get_embedder
from common.memory.index import collection_for, index_files, search

IDNA = Path(idna.__file__).parent
# The code, not the generated Unicode tables (idnadata.py, uts46data.py: 19k lines of data).
FILES = ("core.py", "intranges.py", "codec.py", "compat.py")


def idna_files(*names: str) -> dict[str, str]:
    return {f"idna/{name}": (IDNA / name).read_text(encoding="utf-8") for name in names}


class CountingEmbedder:
    """An embedder that records what it was asked to embed."""

    def __init__(self, inner: embedders.Embedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return self.inner.embed(texts)


def all_points(project_id: str) -> list[dict[str, Any]]:
    from common.stores.qdrant_store import get_qdrant

    records, _ = get_qdrant().scroll(collection_for(project_id), limit=10_000, with_payload=True)
    return [r.payload for r in records if r.payload.get("kind") == "chunk"]


@pytest.fixture(autouse=True)
def _fresh_embedder() -> Iterator[None]:
    embedders.reset()
    yield
    embedders.reset()


@pytest.fixture(scope="module")
def indexed(_session_env: None) -> Iterator[str]:
    """The idna package indexed once for this module, with the embedded embedder."""
    from common.stores.qdrant_store import reset

    project_id = str(uuid.uuid4())
    report = index_files(
        project_id=project_id, files=idna_files(*FILES), embedder=EmbeddedEmbedder()
    )
    assert report.embedded == report.chunks_total > 80
    yield project_id
    reset()


@pytest.mark.parametrize(
    ("query", "path", "symbol"),
    [
        (
            "check whether an integer is contained in a list of ranges",
            "idna/intranges.py",
            "intranges_contain",
        ),
        ("check bidirectional text rules of a label", "idna/core.py", "check_bidi"),
        ("validate the length of a domain name", "idna/core.py", "valid_string_length"),
        ("register the idna codec with python's codecs module", "idna/codec.py", None),
        ("legacy ToASCII and ToUnicode functions from IDNA 2003", "idna/compat.py", None),
    ],
)
def test_a_question_in_words_finds_the_code_that_answers_it(
    indexed: str, stores: None, query: str, path: str, symbol: str | None
) -> None:
    # Given idna indexed with the embedded embedder; When asking in plain words
    hits = search(indexed, query, 5, embedder=EmbeddedEmbedder())
    # Then the file of the function that does it comes first
    assert len(hits) == 5
    assert hits[0].path == path, [(h.path, h.symbol) for h in hits]
    if symbol:
        assert hits[0].symbol == symbol
    assert hits[0].score >= hits[-1].score
    first = hits[0]
    lines = (IDNA / Path(first.path).name).read_text().splitlines()
    assert first.text.splitlines()[0] == lines[first.start_line - 1]
    assert first.start_line <= first.end_line <= len(lines)


def test_indexing_the_same_files_again_embeds_nothing(indexed: str, stores: None) -> None:
    # Given the indexed project; When the same files are indexed again
    counting = CountingEmbedder(EmbeddedEmbedder())
    report = index_files(project_id=indexed, files=idna_files(*FILES), embedder=counting)
    # Then every chunk is skipped by its hash and the embedder is not called
    assert report.embedded == 0
    assert report.deleted == 0
    assert report.skipped_unchanged == report.chunks_total > 80
    assert counting.calls == []
    assert report.embedder == "embedded:all-MiniLM-L6-v2" and report.dim == 384
    assert not report.recreated


def test_a_changed_file_is_re_embedded_where_it_changed_and_a_deleted_one_leaves(
    stores: None,
) -> None:
    # Given a project of three files
    project_id = str(uuid.uuid4())
    files = idna_files("intranges.py", "codec.py", "compat.py")
    first = index_files(project_id=project_id, files=files, embedder=EmbeddedEmbedder())
    compat_chunks = [p for p in all_points(project_id) if p["path"] == "idna/compat.py"]
    assert compat_chunks
    # When one function changes, two lines are added above everything, and a file goes
    changed = dict(files)
    docstring = '"""Determine if `int_` falls into one of the ranges in `ranges`."""'
    assert docstring in files["idna/intranges.py"]
    changed["idna/intranges.py"] = "# a new comment\n\n" + files["idna/intranges.py"].replace(
        docstring, '"""Is `int_` in one of the ranges?"""'
    )
    del changed["idna/compat.py"]
    counting = CountingEmbedder(EmbeddedEmbedder())
    report = index_files(project_id=project_id, files=changed, embedder=counting)
    # Then only the changed function and the changed header are embedded again
    assert report.embedded == 2
    assert sum(counting.calls) == 2
    assert report.deleted == len(compat_chunks) + 2
    assert report.chunks_total == first.chunks_total - len(compat_chunks)
    assert report.skipped_unchanged == report.chunks_total - 2
    # And the deleted file's chunks are gone, the moved ones have their new lines
    points = all_points(project_id)
    assert {p["path"] for p in points} == {"idna/intranges.py", "idna/codec.py"}
    assert len(points) == report.chunks_total
    new_lines = changed["idna/intranges.py"].splitlines()
    for point in points:
        if point["path"] == "idna/intranges.py":
            assert point["text"].splitlines()[0] == new_lines[point["start_line"] - 1]


def test_another_embedder_rebuilds_the_index_and_search_asks_for_it(
    ollama: Any, stores: None
) -> None:
    # Given a project indexed with the embedded embedder
    project_id = str(uuid.uuid4())
    files = idna_files("intranges.py")
    index_files(project_id=project_id, files=files, embedder=EmbeddedEmbedder())
    from common.models import get_model_client

    provider = ProviderEmbedder(get_model_client(), model="nomic-embed-text")
    # When searching with another embedder: Then it is refused, naming both
    with pytest.raises(Conflict) as refused:
        search(project_id, "ranges", 3, embedder=provider)
    assert refused.value.details == {
        "indexed_with": "embedded:all-MiniLM-L6-v2",
        "embedder": "ollama:nomic-embed-text",
    }
    # When indexing with it: Then the index is rebuilt with its vectors
    report = index_files(project_id=project_id, files=files, embedder=provider)
    assert report.recreated
    assert report.embedded == report.chunks_total
    assert report.dim == 768
    assert len(search(project_id, "ranges", 3, embedder=provider)) == 3


def test_the_provider_embedder_uses_the_model_servers_embed_in_batches(
    ollama: Any, set_env: Any
) -> None:
    # Given EMBEDDING_PROVIDER=ollama (the double's vectors are hashes)
    set_env(EMBEDDING_PROVIDER="ollama")
    embedder = get_embedder()
    assert isinstance(embedder, ProviderEmbedder)
    assert embedder.name == "ollama:nomic-embed-text"
    # When a project is indexed
    project_id = str(uuid.uuid4())
    report = index_files(project_id=project_id, files=idna_files("core.py"))
    # Then its chunks went to /api/embed in batches, and search works on them
    calls = [r for r in ollama.requests if r["path"] == "/api/embed"]
    assert report.embedder == "ollama:nomic-embed-text"
    assert report.dim == 768
    assert report.embedded == report.chunks_total > 64
    batches = [len(r["json"]["input"]) for r in calls]
    assert max(batches) <= 64
    assert sum(batches) >= report.chunks_total
    assert all(r["json"]["model"] == "nomic-embed-text" for r in calls)
    hits = search(project_id, "check_bidi", 4)
    assert len(hits) == 4 and all(h.path == "idna/core.py" for h in hits)


def test_auto_takes_the_provider_when_it_embeds(ollama: Any, set_env: Any) -> None:
    set_env(EMBEDDING_PROVIDER="auto")
    embedder = get_embedder()
    assert isinstance(embedder, ProviderEmbedder)
    assert embedder.dim == 768


def test_auto_falls_back_to_the_embedded_embedder_without_the_embedding_model(
    ollama: Any, set_env: Any
) -> None:
    # Given Ollama without the embedding model pulled
    ollama.models.discard("nomic-embed-text:latest")
    set_env(EMBEDDING_PROVIDER="auto")
    # When the embedder is chosen: Then it is the embedded one
    assert isinstance(get_embedder(), EmbeddedEmbedder)


def test_the_embedded_model_gives_sentence_transformers_tokens_and_vectors() -> None:
    # Reference values from sentence-transformers 6.2 (torch) loading the same package
    # with max_seq_length 128, and from its Hugging Face tokenizer.
    from common.memory.minilm import MiniLM

    model = MiniLM()
    texts = ["def add(a, b):\n    return a + b", "Héllo Wörld, naïve café! 日本 x→y"]
    assert [model.tokenizer.encode(t) for t in texts] == [
        [101, 13366, 5587, 1006, 1037, 1010, 1038, 1007, 1024, 2709, 1037, 1009, 1038, 102],
        [101, 7592, 2088, 1010, 15743, 7668, 999, 1864, 1876, 1060, 30113, 2100, 102],
    ]
    vectors = model.encode(texts)
    expected = [
        [-0.02379, -0.00601, -0.06713, 0.02349, -0.09138, 0.01853],
        [-0.00816, 0.00584, 0.06228, -0.03638, -0.02218, 0.01475],
    ]
    for row, want in zip(vectors[:, :6].tolist(), expected, strict=True):
        assert row == pytest.approx(want, abs=2e-4)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.07816, abs=2e-4)


def test_the_embedded_embedder_needs_no_network(stores: None) -> None:
    # Given no network at all; When the embedded embedder embeds
    from pytest_socket import disable_socket, enable_socket

    disable_socket(allow_unix_socket=True)
    try:
        vectors = EmbeddedEmbedder().embed(["def add(a, b): return a + b", "sum two numbers"])
    finally:
        enable_socket()
    # Then it gives unit vectors of its size, close for close meanings
    assert [len(v) for v in vectors] == [384, 384]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-4
    similarity = sum(a * b for a, b in zip(*vectors, strict=True))
    assert similarity > 0.3
