"""Indexing a real code base through the local server: first index, re-index, memory.

A pure-Python library from this venv (``--library``, 50,000 lines or more of ``.py``
files) is packed as a ``.tar.gz`` and uploaded to a project through the resumable
upload API of a local server (``python -m local``) on fresh embedded stores; the
upload's last byte queues the ``index`` job, timed from the upload's completion to
the job's end. Then ``POST /api/projects/{id}/index`` re-indexes the unchanged tree,
timed from the request to the job's end. The server's RSS is sampled every 50 ms
during both jobs. Run with two embedders (``--provider``):

* ``a``: ``EMBEDDING_PROVIDER=ollama`` against the Ollama double, whose ``/api/embed``
  answers at once (``--dim`` values a vector): the cost of everything but the model.
  Goal >= 1,000 chunks/s.
* ``b``: ``EMBEDDING_PROVIDER=embedded`` (MiniLM in the server). Baseline, measured
  in this process after the server stopped: ``EmbeddedEmbedder().embed`` over the same
  chunks' ``embedding_text``, in the indexer's batches (``EMBED_BATCH``). Goal: end to
  end >= 0.8x the embedder's own chunks/s.

For both: re-index <= 2 % of the first index's time; server RSS <= 300 MB (the
server process; its store servers' RSS is printed beside it). A JSON line with every
figure ends the output. Exits 1 when a goal fails.

    .venv/bin/python bench/index.py [--provider a|b|both] [--library pymongo]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import signal
import tarfile
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from _harness import bench_server, fake_ollama_process

from common.memory.chunking import chunk_file
from common.memory.index import EMBED_BATCH, embedding_text

MB = 1 << 20
FINISHED = {"succeeded", "failed", "cancelled"}
UPLOAD_CHUNK = 4 * MB
MIN_LINES = 50_000

GOAL_A_RATE = 1000.0
GOAL_B_RATIO = 0.8
GOAL_REINDEX = 0.02
GOAL_RSS_MB = 300.0


# -- the code base ----------------------------------------------------------------------


@dataclass
class CodeBase:
    name: str
    root: Path  # the package folder; paths are relative to its parent (``name/...``)
    files: dict[str, str]
    lines: int
    texts: list[str] = field(default_factory=list)  # embedding_text of every chunk

    @property
    def chunks(self) -> int:
        return len(self.texts)


def load_code_base(name: str) -> CodeBase:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name}: not an installed package")
    root = Path(next(iter(spec.submodule_search_locations)))
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        try:
            files[path.relative_to(root.parent).as_posix()] = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue
    lines = sum(
        text.count("\n") + (not text.endswith("\n") and bool(text)) for text in files.values()
    )
    base = CodeBase(name, root, files, lines)
    for rel, text in files.items():
        base.texts += [embedding_text(chunk) for chunk in chunk_file(rel, text)]
    return base


def pack(base: CodeBase, target: Path) -> str:
    with tarfile.open(target, "w:gz") as archive:
        for rel in base.files:
            archive.add(base.root.parent / rel, arcname=rel, recursive=False)
    hasher = hashlib.sha256()
    with target.open("rb") as source:
        while piece := source.read(MB):
            hasher.update(piece)
    return hasher.hexdigest()


# -- memory -------------------------------------------------------------------------------


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A size line of /proc/<pid>/status: ``VmRSS``; ``RssAnon`` (heap and stacks) and
    ``RssFile`` (mapped files: code, and the embedded model's memory-mapped weights)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class RssSampler:
    """VmRSS of the server and of the server plus its children, every ``period_s``."""

    def __init__(self, pid: int, period_s: float = 0.05) -> None:
        self.pid, self.period_s = pid, period_s
        self.max_server_kb = self.max_tree_kb = 0
        # At the sample with the highest VmRSS: how much of it was heap, how much files.
        self.at_max_anon_kb = self.at_max_file_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._kids: list[int] = []
        self._kids_at = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self._kids_at > 1.0:  # the store servers do not come and go
                self._kids, self._kids_at = _descendants(self.pid), now
            own = _rss_kb(self.pid)
            tree = own + sum(_rss_kb(k) for k in self._kids)
            if own > self.max_server_kb:
                self.max_server_kb = own
                self.at_max_anon_kb = _rss_kb(self.pid, "RssAnon")
                self.at_max_file_kb = _rss_kb(self.pid, "RssFile")
            self.max_tree_kb = max(self.max_tree_kb, tree)
            self.samples += 1
            self._stop.wait(self.period_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


# -- one run against a server ---------------------------------------------------------------


def wait_job(client: httpx.Client, job_id: str, timeout_s: float) -> tuple[dict[str, Any], float]:
    """The job once finished, and when (perf_counter) this client saw it finish."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").raise_for_status().json()
        if job["status"] in FINISHED:
            return job, time.perf_counter()
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} not finished within {timeout_s:.0f} s")


def index_log(log_text: str) -> list[dict[str, Any]]:
    found = []
    for line in log_text.splitlines():
        if line.startswith("{") and '"indexed project"' in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
    return found


def run_server(
    label: str, base: CodeBase, archive: Path, digest: str, timeout_s: float, dim: int
) -> dict[str, Any]:
    provider = {"a": "ollama", "b": "embedded"}[label]
    with ExitStack() as stack:
        if label == "a":
            ollama_url = stack.enter_context(fake_ollama_process(0, 0, embed_dim=dim))
        else:
            ollama_url = "http://127.0.0.1:9"  # nothing there: no model is asked
        server, key = stack.enter_context(
            bench_server(ollama_url, EMBEDDING_PROVIDER=provider, LOG_LEVEL="INFO")
        )
        assert server.process is not None
        pid = server.process.pid
        idle_kb = _rss_kb(pid)
        client = stack.enter_context(
            httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120)
        )
        project = client.post("/api/projects", json={"name": f"bench-{base.name}"})
        project_id = project.raise_for_status().json()["id"]
        size = archive.stat().st_size
        upload = client.post(
            f"/api/projects/{project_id}/uploads",
            json={"filename": f"{base.name}.tar.gz", "size": size, "sha256": digest},
        )
        upload = upload.raise_for_status().json()
        data = archive.read_bytes()
        sampler = stack.enter_context(RssSampler(pid))
        answer: dict[str, Any] = {}
        for first in range(0, size, UPLOAD_CHUNK):
            piece = data[first : first + UPLOAD_CHUNK]
            last = first + len(piece) - 1
            response = client.put(
                upload["upload_url"],
                content=piece,
                headers={"Content-Range": f"bytes {first}-{last}/{size}"},
            )
            answer = response.raise_for_status().json()
        completed = time.perf_counter()
        if answer.get("state") != "complete":
            raise RuntimeError(f"upload not complete: {answer}")

        job_id = None
        deadline = time.monotonic() + 30
        while job_id is None and time.monotonic() < deadline:
            detail = client.get(f"/api/projects/{project_id}").raise_for_status().json()
            job_id = (detail.get("index") or {}).get("job_id")
            if job_id is None:
                time.sleep(0.05)
        if job_id is None:
            raise RuntimeError("no index job queued by the upload")
        first_job, first_end = wait_job(client, job_id, timeout_s)
        if first_job["status"] != "succeeded":
            raise RuntimeError(f"index job {first_job['status']}: {first_job.get('error')}")
        first_s = first_end - completed

        again_started = time.perf_counter()
        accepted = client.post(f"/api/projects/{project_id}/index", json={})
        if accepted.status_code != 202:
            raise RuntimeError(f"re-index: {accepted.status_code} {accepted.text[:300]}")
        again_job, again_end = wait_job(client, accepted.json()["job_id"], timeout_s)
        if again_job["status"] != "succeeded":
            raise RuntimeError(f"re-index job {again_job['status']}: {again_job.get('error')}")
        again_s = again_end - again_started
        sampler.__exit__()
        logged = index_log(server.logs())
    result = first_job.get("result") or {}
    again_result = again_job.get("result") or {}
    chunks = int(result.get("chunks_total", 0))
    return {
        "embedder": result.get("embedder"),
        "files": result.get("files"),
        "chunks": chunks,
        "embedded": result.get("embedded"),
        "first_s": round(first_s, 3),
        "first_server_ms": result.get("duration_ms"),
        "chunks_per_s": round(chunks / first_s, 1),
        "reindex_s": round(again_s, 3),
        "reindex_server_ms": again_result.get("duration_ms"),
        "reindex_embedded": again_result.get("embedded"),
        "reindex_files_read": again_result.get("files_read"),
        "reindex_ratio": round(again_s / first_s, 4),
        "rss_idle_mb": round(idle_kb / 1024, 1),
        "rss_max_mb": round(sampler.max_server_kb / 1024, 1),
        "rss_max_anon_mb": round(sampler.at_max_anon_kb / 1024, 1),
        "rss_max_file_mb": round(sampler.at_max_file_kb / 1024, 1),
        "rss_max_with_children_mb": round(sampler.max_tree_kb / 1024, 1),
        "rss_samples": sampler.samples,
        "log_indexed": [
            {
                k: e.get(k)
                for k in ("duration_ms", "files", "files_read", "chunks_total", "embedded")
            }
            for e in logged
        ],
    }


def embedder_baseline(base: CodeBase) -> dict[str, Any]:
    """MiniLM's own chunks/s on the same texts, in the indexer's batches."""
    from common.memory.embedders import EmbeddedEmbedder

    embedder = EmbeddedEmbedder()
    loading = time.perf_counter()
    embedder.embed(["warm up"])
    load_s = time.perf_counter() - loading
    started = time.perf_counter()
    for start in range(0, base.chunks, EMBED_BATCH):
        embedder.embed(base.texts[start : start + EMBED_BATCH])
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "load_s": round(load_s, 3),
        "chunks_per_s": round(base.chunks / seconds, 1),
    }


# -- report -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@contextmanager
def terminate_as_exit() -> Any:
    """SIGTERM runs the clean-up (server stopped, temp dirs removed) like Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("a", "b", "both"), default="both")
    parser.add_argument("--library", default="pymongo")
    parser.add_argument("--dim", type=int, default=768, help="(a) the double's vector size")
    parser.add_argument("--timeout-s", type=float, default=1800, help="bound on each job")
    args = parser.parse_args()
    labels = ["a", "b"] if args.provider == "both" else [args.provider]

    bench_started = time.perf_counter()
    base = load_code_base(args.library)
    print(
        f"code base: {base.name} ({base.root}): {len(base.files)} .py files,"
        f" {base.lines:,} lines, {base.chunks:,} chunks (chunk_file, in this process)"
    )
    if base.lines < MIN_LINES:
        print(f"  (fewer than {MIN_LINES:,} lines: pick a bigger --library)")
    figures: dict[str, Any] = {
        "library": base.name,
        "files": len(base.files),
        "lines": base.lines,
        "chunks": base.chunks,
        "embed_batch": EMBED_BATCH,
    }
    ok = base.lines >= MIN_LINES
    with terminate_as_exit(), tempfile.TemporaryDirectory(prefix="bench-index-") as folder:
        archive = Path(folder) / f"{base.name}.tar.gz"
        digest = pack(base, archive)
        figures["archive_mb"] = round(archive.stat().st_size / MB, 2)
        print(f"archive: {figures['archive_mb']} MB .tar.gz\n")
        for label in labels:
            started = time.perf_counter()
            run = run_server(label, base, archive, digest, args.timeout_s, args.dim)
            run["wall_s"] = round(time.perf_counter() - started, 1)
            figures[label] = run
            if run["chunks"] != base.chunks:
                print(
                    f"  note: the server counted {run['chunks']} chunks, this process {base.chunks}"
                )
        if "b" in labels:
            figures["b"]["baseline"] = embedder_baseline(base)

    print(
        f"{'':4}{'embedder':34}{'chunks':>8}{'first s':>9}{'chunks/s':>10}"
        f"{'re-index s':>12}{'ratio':>8}{'RSS MB':>8}"
    )
    for label in labels:
        run = figures[label]
        print(
            f"({label}) {str(run['embedder']):34}{run['chunks']:>8}{run['first_s']:>9.2f}"
            f"{run['chunks_per_s']:>10.1f}{run['reindex_s']:>12.3f}"
            f"{run['reindex_ratio'] * 100:>7.2f}%{run['rss_max_mb']:>8.0f}"
        )
    print()
    for label in labels:
        run = figures[label]
        checks: list[tuple[str, bool]] = []
        if label == "a":
            checks.append(
                (
                    f"(a) end to end {run['chunks_per_s']:.0f} chunks/s"
                    f" (goal >= {GOAL_A_RATE:.0f})",
                    run["chunks_per_s"] >= GOAL_A_RATE,
                )
            )
        else:
            own = run["baseline"]["chunks_per_s"]
            run["ratio_to_embedder"] = round(run["chunks_per_s"] / own, 3)
            checks.append(
                (
                    f"(b) end to end {run['chunks_per_s']:.1f} chunks/s, the embedder alone"
                    f" {own:.1f} chunks/s (batches of {EMBED_BATCH}): ratio"
                    f" {run['ratio_to_embedder']:.2f}x (goal >= {GOAL_B_RATIO})",
                    run["ratio_to_embedder"] >= GOAL_B_RATIO,
                )
            )
        checks.append(
            (
                f"({label}) re-index of the unchanged tree {run['reindex_s']:.3f} s ="
                f" {run['reindex_ratio'] * 100:.2f}% of the first index's {run['first_s']:.2f} s"
                f" (goal <= {GOAL_REINDEX * 100:g}%)",
                run["reindex_ratio"] <= GOAL_REINDEX,
            )
        )
        checks.append(
            (
                f"({label}) max server RSS during the jobs {run['rss_max_mb']:.0f} MB"
                f" (heap {run['rss_max_anon_mb']:.0f} MB, mapped files"
                f" {run['rss_max_file_mb']:.0f} MB; {run['rss_idle_mb']:.0f} MB idle;"
                " with its store servers"
                f" {run['rss_max_with_children_mb']:.0f} MB) (goal <= {GOAL_RSS_MB:.0f})",
                run["rss_max_mb"] <= GOAL_RSS_MB,
            )
        )
        for text, passed in checks:
            print(f"{verdict(passed)}  {text}")
            ok &= passed
        run["pass"] = all(passed for _, passed in checks)
    figures["bench_s"] = round(time.perf_counter() - bench_started, 1)
    figures["pass"] = ok
    print(f"\nbench took {figures['bench_s']:.0f} s")
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
