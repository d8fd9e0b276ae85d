"""What the gateway adds to a model call: 50 concurrent explains through the local server
vs the same calls made by the ollama client straight to the same Ollama double.

The double (in a process of its own) streams each answer as a model would
(``--tokens`` pieces, ``--gap-ms`` apart), so both sides wait on the same simulated
generation; what differs is our server: auth (PostgreSQL), rate limit and cache
(Redis), prompt building, the checked-output loop, history, JSON. Every request has
different code, so the cache never answers.

    .venv/bin/python bench/gateway.py [--requests 50] [--rounds 4]
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
from _harness import bench_server, fake_ollama_process, percentile, summary

from common.agents import prompts

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="concurrent requests a round")
    parser.add_argument("--rounds", type=int, default=4)
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
    with (
        fake_ollama_process(args.tokens, args.gap_ms) as ollama_url,
        bench_server(ollama_url) as (server, key),
        ThreadPoolExecutor(n) as pool,
        httpx.Client(timeout=60, limits=httpx.Limits(max_connections=n * 2)) as http,
    ):
        clients = [ollama.Client(host=ollama_url) for _ in range(n)]
        # Warm both paths (connections, the model's /api/show, imports).
        list(pool.map(direct_call, clients))
        list(pool.map(lambda _: gateway_call(http, server.url, key), range(n)))
        for _ in range(args.rounds):
            time.sleep(args.pause_s)
            # Alternate the two sides so drift on the machine hits both alike.
            direct += pool.map(direct_call, clients)
            results = list(pool.map(lambda _: gateway_call(http, server.url, key), range(n)))
            through += [r[0] for r in results]
            server_side += [r[1] for r in results]
    p50_direct, p50_gateway = percentile(direct, 50), percentile(through, 50)
    pause = f", {args.pause_s:g} s quiet before each" if args.pause_s else ""
    print(
        f"{n} concurrent explains x {args.rounds} rounds{pause}; the double streams"
        f" {args.tokens} pieces {args.gap_ms:g} ms apart (at least"
        f" {args.tokens * args.gap_ms:g} ms a call)\n"
    )
    print(f"direct  (ollama client -> double)          {summary(direct)}")
    print(f"gateway (HTTP -> local server -> double)   {summary(through)}")
    print(f"server-side time of the gateway requests   {summary(server_side)}\n")
    print(f"ratio p50 gateway/direct: {p50_gateway / p50_direct:.3f}   (goal <= 1.05)")
    print(f"ratio p99 gateway/direct: {percentile(through, 99) / percentile(direct, 99):.3f}")
    print(f"added p50: {p50_gateway - p50_direct:+.2f} ms   (goal <= 3 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
