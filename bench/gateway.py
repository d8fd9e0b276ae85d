"""What the gateway adds to a model call: 50 concurrent explains through the local server
vs the same calls made by the ollama client straight to the same Ollama double.

The double (in a process of its own) streams each answer as a model would
(``--tokens`` pieces, ``--gap-ms`` apart), so both sides wait on the same simulated
generation; what differs is our server: auth (PostgreSQL), rate limit and cache
(Redis), prompt building, the checked-output loop, history, JSON. Every request has
different code, so the cache never answers.

A third side measures the floor in the same run: the same requests through a bare
FastAPI route on uvicorn that only forwards the prompt with the ollama client
(bench/_floor.py), so what any server of this shape adds on this machine is printed
beside what ours adds.

    .venv/bin/python bench/gateway.py [--requests 50] [--rounds 6]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import ollama
from _harness import ROOT, bench_server, fake_ollama_process, percentile, summary

from common.agents import prompts
from tests.utils.stores import free_port

_ids = itertools.count()


def code() -> str:
    return f"def f{next(_ids)}(x):\n    return x * 2\n"


def direct_call(client: ollama.Client) -> float:
    messages = [
        m.model_dump()
        for m in prompts.render(
            "explain", context="", task="Explain this code.", language="python", code=code()
        )
    ]
    started = time.perf_counter()
    # The same request the server sends for an explain nobody streams.
    client.chat(
        model="qwen2.5-coder:7b",
        messages=messages,
        stream=False,
        options={"temperature": 0, "num_ctx": 4096},
        keep_alive="5m",
    )
    return (time.perf_counter() - started) * 1000


def gateway_call(client: httpx.Client, url: str, key: str) -> tuple[float, float]:
    started = time.perf_counter()
    response = client.post(
        f"{url}/api/explain",
        headers={"X-API-Key": key},
        json={"code": code(), "language": "python"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    server = float(response.headers["server-timing"].split("dur=")[1])
    return elapsed, server


def floor_call(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.post(f"{url}/api/explain", json={"code": code(), "language": "python"})
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


@contextmanager
def floor_server(ollama_url: str) -> Iterator[str]:
    """bench/_floor.py on uvicorn (the local server's defaults) in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "_floor:app"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        + ["--no-access-log"],
        cwd=ROOT,
        env={**os.environ, "OLLAMA_HOST": ollama_url},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=5)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the floor server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="concurrent requests a round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument(
        "--pause-s",
        type=float,
        default=0.0,
        help="quiet seconds before each round (over 10 s the server's idle threads end)",
    )
    args = parser.parse_args()
    n = args.requests
    direct: list[float] = []
    through: list[float] = []
    server_side: list[float] = []
    floor: list[float] = []
    with (
        fake_ollama_process(args.tokens, args.gap_ms) as ollama_url,
        bench_server(ollama_url) as (server, key),
        floor_server(ollama_url) as floor_url,
        ThreadPoolExecutor(n) as pool,
    ):
        # A client per thread on every side, as the direct side has: one shared client
        # would queue the threads on its connection pool's lock.
        clients = [ollama.Client(host=ollama_url) for _ in range(n)]
        https = [httpx.Client(timeout=60) for _ in range(n)]

        def run_direct() -> list[float]:
            return list(pool.map(direct_call, clients))

        def run_gateway() -> list[tuple[float, float]]:
            return list(pool.map(lambda h: gateway_call(h, server.url, key), https))

        def run_floor() -> list[float]:
            return list(pool.map(lambda h: floor_call(h, floor_url), https))

        # Warm every path (threads, connections, the model's /api/show, imports): the
        # second round of a new server still made threads and connections.
        for _ in range(2):
            run_direct(), run_gateway(), run_floor()
        for _ in range(args.rounds):
            time.sleep(args.pause_s)
            # Alternate the sides so drift on the machine hits all alike.
            direct += run_direct()
            results = run_gateway()
            through += [r[0] for r in results]
            server_side += [r[1] for r in results]
            floor += run_floor()
        for http in https:
            http.close()
    p50_direct, p50_gateway, p50_floor = (percentile(v, 50) for v in (direct, through, floor))
    pause = f", {args.pause_s:g} s quiet before each" if args.pause_s else ""
    print(
        f"{n} concurrent explains x {args.rounds} rounds{pause}; the double streams"
        f" {args.tokens} pieces {args.gap_ms:g} ms apart (at least"
        f" {args.tokens * args.gap_ms:g} ms a call)\n"
    )
    print(f"direct  (ollama client -> double)          {summary(direct)}")
    print(f"gateway (HTTP -> local server -> double)   {summary(through)}")
    print(f"server-side time of the gateway requests   {summary(server_side)}")
    print(f"floor   (HTTP -> bare FastAPI -> double)   {summary(floor)}\n")
    print(f"ratio p50 gateway/direct: {p50_gateway / p50_direct:.3f}   (goal <= 1.05)")
    print(f"ratio p99 gateway/direct: {percentile(through, 99) / percentile(direct, 99):.3f}")
    print(f"added p50: {p50_gateway - p50_direct:+.2f} ms   (goal <= 3 ms)")
    print(
        f"floor: ratio p50 {p50_floor / p50_direct:.3f}, added p50 {p50_floor - p50_direct:+.2f}"
        f" ms: what uvicorn, FastAPI and the ollama client alone add here"
    )
    print(f"ours above the floor: {p50_gateway - p50_floor:+.2f} ms at p50")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
