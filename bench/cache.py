"""The L0 cache: the same explain asked twice, uncached then answered from Redis.

The Ollama double (in its own process) generates each answer at a model's pace
(``--tokens`` pieces, ``--gap-ms`` apart); the repeat is answered from the cache.
Prints client-side p50/p99 of both, their ratio, and the server-side time of the
cached answers (the ``Server-Timing`` header).

    .venv/bin/python bench/cache.py [--requests 100]
"""

from __future__ import annotations

import argparse
import time

import httpx
from _harness import bench_server, fake_ollama_process, percentile, summary


def call(client: httpx.Client, url: str, key: str, code: str) -> tuple[float, float, str]:
    started = time.perf_counter()
    response = client.post(
        f"{url}/api/explain",
        headers={"X-API-Key": key},
        json={"code": code, "language": "python"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    server = float(response.headers["server-timing"].split("dur=")[1])
    return elapsed, server, response.headers.get("x-cache", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args()
    uncached: list[float] = []
    cached: list[float] = []
    cached_server: list[float] = []
    with (
        fake_ollama_process(args.tokens, args.gap_ms) as ollama_url,
        bench_server(ollama_url) as (server, key),
        httpx.Client(timeout=60) as client,
    ):
        for i in range(5):  # warm up: connections, imports, the model's /api/show
            call(client, server.url, key, f"warm{i} = {i}\n")
        for i in range(args.requests):
            code = f"def area_{i}(r):\n    return 3.14159 * r * r\n"
            first = call(client, server.url, key, code)
            again = call(client, server.url, key, code)
            assert first[2] == "miss" and again[2] == "hit", (first, again)
            uncached.append(first[0])
            cached.append(again[0])
            cached_server.append(again[1])
    ratio = percentile(uncached, 50) / percentile(cached, 50)
    print(
        f"{args.requests} explains, each asked twice; the double generates {args.tokens}"
        f" pieces {args.gap_ms:g} ms apart\n"
    )
    print(f"uncached (model answers)        {summary(uncached)}")
    print(f"cached (Redis answers)          {summary(cached)}")
    print(f"cached, server side             {summary(cached_server)}\n")
    print(f"ratio p50 uncached/cached: {ratio:.1f}x   (goal >= 50x)")
    print(f"cached p50 server side: {percentile(cached_server, 50):.2f} ms   (goal <= 2 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
