"""Monitoring fan-out: 500 WebSocket subscribers on /ws/monitoring/stream.

A local server on fresh embedded stores samples every ``--interval-ms``; subscribers
are spread over ``--procs`` client processes (so that no one client's event loop
holds up the others' receipts). Each sample says when it was taken (``ts``); a
subscriber notes when it arrived. Delivery latency is arrival minus ``ts``: sampling
ends, then Redis pub/sub, the server's fan-out, the socket and the client's loop
(one machine, one clock).

Prints delivery p50/p99 for 1 subscriber (the baseline) and for ``--subscribers``,
their ratio, and lost: samples missing from a subscriber's stream between the first
and the last sample of the measured window (seq gaps: must be 0). Exits 1 if any
were lost.

    .venv/bin/python bench/ws_fanout.py [--subscribers 500] [--interval-ms 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, bench_server, percentile

GOAL_P99_MS = 50.0


# -- a client process -------------------------------------------------------------


async def client_main(url: str, key: str, count: int, out: Path, deflate: bool) -> None:
    """Open ``count`` subscriptions, say "ready", record every frame until stdin says stop."""
    from websockets.asyncio.client import connect

    received: list[list[tuple[float, str]]] = [[] for _ in range(count)]
    opened = 0
    sockets: list[Any] = []
    gate = asyncio.Semaphore(50)  # do not open 500 handshakes at once

    async def subscribe(index: int) -> None:
        nonlocal opened
        async with gate:
            ws = await connect(
                url,
                additional_headers={"X-API-Key": key},
                max_queue=None,
                # Browsers ask for permessage-deflate; the server then compresses each
                # frame once per connection (zlib keeps a context per connection).
                compression="deflate" if deflate else None,
            )
        sockets.append(ws)
        opened += 1
        frames = received[index]
        try:
            async for message in ws:
                # The time first; parsing waits until the run is over.
                frames.append((time.time(), str(message)))
        except Exception:
            pass

    tasks = [asyncio.create_task(subscribe(i)) for i in range(count)]
    while opened < count:
        await asyncio.sleep(0.05)
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    rows = []
    for frames in received:
        rows.append([(at, _seq_ts(text)) for at, text in frames])
    out.write_text(json.dumps(rows))


def _seq_ts(text: str) -> tuple[int, float]:
    sample = json.loads(text)
    return int(sample["seq"]), float(sample["ts"])


# -- the coordinator ----------------------------------------------------------------


def measure(
    url: str,
    key: str,
    subscribers: int,
    procs: int,
    seconds: float,
    folder: Path,
    *,
    deflate: bool = True,
) -> tuple[list[float], int, int]:
    """Delivery latencies (ms) within the measured window, samples lost, samples in it."""
    procs = max(1, min(procs, subscribers))
    shares = [subscribers // procs + (1 if i < subscribers % procs else 0) for i in range(procs)]
    clients = []
    for i, share in enumerate(shares):
        out = folder / f"client-{subscribers}-{i}.json"
        process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--client",
                url,
                key,
                str(share),
                str(out),
                "deflate" if deflate else "plain",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        clients.append((process, out))
    for process, _ in clients:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"a client process did not connect (said {line!r})")
    time.sleep(1.0)  # let the first (replayed) sample and the connects settle
    started = time.time()
    time.sleep(seconds)
    ended = time.time()
    time.sleep(0.5)  # the last samples of the window reach everyone
    rows: list[list[tuple[float, tuple[int, float]]]] = []
    for process, out in clients:
        assert process.stdin is not None
        process.stdin.write("stop\n")
        process.stdin.flush()
        process.wait(60)
        rows += [[(at, (seq, ts)) for at, (seq, ts) in sub] for sub in json.loads(out.read_text())]
    # The window: samples taken between started and ended, by any subscriber's account.
    in_window = sorted({seq for sub in rows for _, (seq, ts) in sub if started <= ts <= ended})
    if not in_window:
        raise RuntimeError("no sample was taken in the measured window")
    first, last = in_window[0], in_window[-1]
    expected = set(range(first, last + 1))
    latencies: list[float] = []
    lost = 0
    for sub in rows:
        got = {seq for _, (seq, _) in sub if first <= seq <= last}
        lost += len(expected - got)
        latencies += [(at - ts) * 1000 for at, (seq, ts) in sub if first <= seq <= last]
    return latencies, lost, len(expected)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, key, count, out = sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
        asyncio.run(client_main(url, key, count, out, sys.argv[6] == "deflate"))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=max(2, os.cpu_count() or 1))
    args = parser.parse_args()

    env = {"MONITOR_INTERVAL_MS": str(args.interval_ms), "MONITOR_PERSIST_SECONDS": "60"}
    # No model is called: any closed port will do for the model server.
    with (
        tempfile.TemporaryDirectory(prefix="bench-ws-") as folder,
        bench_server("http://127.0.0.1:9", **env) as (server, key),
    ):
        url = server.url.replace("http://", "ws://") + "/ws/monitoring/stream"
        base, base_lost, base_n = measure(url, key, 1, 1, args.seconds, Path(folder))
        many, lost, n = measure(url, key, args.subscribers, args.procs, args.seconds, Path(folder))
        plain, plain_lost, plain_n = measure(
            url, key, args.subscribers, args.procs, args.seconds, Path(folder), deflate=False
        )
    lost_total = base_lost + lost + plain_lost
    b50, b99 = percentile(base, 50), percentile(base, 99)
    m50, m99 = percentile(many, 50), percentile(many, 99)
    print(
        f"/ws/monitoring/stream fan-out: a sample every {args.interval_ms} ms, {args.seconds:g} s"
        f" measured, {os.cpu_count()} cores shared by the server and {args.procs} client"
        " processes"
    )
    print(f"1 subscriber       p50 {b50:7.2f} ms   p99 {b99:7.2f} ms   ({base_n} samples)")
    print(
        f"{args.subscribers} subscribers    p50 {m50:7.2f} ms   p99 {m99:7.2f} ms"
        f"   ({n} samples x {args.subscribers} = {len(many)} deliveries)"
    )
    print(f"ratio              p50 {m50 / b50:6.2f}x     p99 {m99 / b99:6.2f}x   vs 1 subscriber")
    p50, p99 = percentile(plain, 50), percentile(plain, 99)
    print(
        f"{args.subscribers}, no deflate   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        f"   ({plain_n} samples; clients that do not ask for permessage-deflate)"
    )
    verdict = "met" if m99 <= GOAL_P99_MS else "NOT met"
    print(f"goal p99 <= {GOAL_P99_MS:g} ms: {verdict}")
    print(f"lost               {lost_total}   (must be 0)")
    return 1 if lost_total else 0


if __name__ == "__main__":
    sys.exit(main())
