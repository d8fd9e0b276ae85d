"""Jobs through the local queue: 200 noop jobs, two worker processes, one killed halfway.

Fresh embedded PostgreSQL and Redis (in this process), two ``python -m common.worker``
processes; the jobs are submitted at once, and when half of them are done the first
worker is killed (SIGKILL: no clean-up). Its jobs in flight are reclaimed by the other
worker once their stream entries idle ``--reclaim-s`` and their leases expire.

Prints enqueue→done p50/p99 (PostgreSQL's created_at → finished_at), jobs/s, how many
jobs were taken over, lost (not succeeded at the end: must be 0) and run twice (a
job run to a recorded end twice: two "job ran" lines in the workers' logs, which each
worker writes after its outcome is committed: must be 0). Exits 1 if either is not 0.

    .venv/bin/python bench/jobs.py [--jobs 200] [--concurrency 4] [--sleep-ms 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, percentile

from tests.utils.stores import STORE_VARS


def start_worker(env: dict[str, str], log_path: Path, concurrency: int) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "common.worker", "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def wait_started(path: Path, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{path.read_text()[-3000:]}")
        if any(e.get("message") == "job worker started" for e in log_lines(path)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"worker did not start:\n{path.read_text()[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs at once per worker")
    parser.add_argument("--sleep-ms", type=float, default=20.0, help="each noop job's duration")
    parser.add_argument("--reclaim-s", type=float, default=2.0, help="lease and reclaim idle")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        data = Path(folder)
        # Fresh embedded stores whatever this shell points at: a bench owns its data.
        for name in (*STORE_VARS, "JOB_QUEUE_URL"):
            os.environ.pop(name, None)
        os.environ.update(DATA_DIR=folder, ENV_FILE="", LOG_LEVEL="WARNING")

        from common.config import get_settings
        from common.logs import set_level
        from common.stores import reset_stores
        from common.stores.embedded import start_embedded

        set_level("WARNING")  # this process's lines; the workers log INFO to their files

        embedded = start_embedded(get_settings(), only=("postgres", "redis"))
        os.environ.update(embedded.urls)
        reset_stores()
        workers: list[subprocess.Popen[bytes]] = []
        try:
            return run(args, data, workers)
        finally:
            for process in workers:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            reset_stores()
            embedded.stop()


def run(args: argparse.Namespace, data: Path, workers: list[subprocess.Popen[bytes]]) -> int:
    from common.auth import authenticate, create_key
    from common.jobs import submit_job
    from common.stores.postgres import get_postgres

    postgres = get_postgres()  # migrates
    principal = authenticate(create_key(store=postgres, name="bench").key, store=postgres)
    env = {
        **os.environ,
        "LOG_LEVEL": "INFO",  # the "job ran" lines are how runs are counted
        "PYTHONUNBUFFERED": "1",
        "JOB_LEASE_SECONDS": str(args.reclaim_s),
        "JOB_RECLAIM_IDLE_SECONDS": str(args.reclaim_s),
    }
    logs = [data / "worker-a.log", data / "worker-b.log"]
    for log in logs:
        workers.append(start_worker(env, log, args.concurrency))
    for process, log in zip(workers, logs, strict=True):
        wait_started(log, process)

    started = time.monotonic()
    ids = [
        submit_job(kind="noop", input={"sleep_s": args.sleep_ms / 1000}, principal=principal).job_id
        for _ in range(args.jobs)
    ]
    submit_s = time.monotonic() - started

    def finished() -> int:
        with postgres.connection() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND finished_at IS NOT NULL",
                (ids,),
            ).fetchone()
        return int(row["n"]) if row else 0

    killed_at = None
    kill_s = 0.0
    deadline = time.monotonic() + args.timeout_s
    while time.monotonic() < deadline:
        done = finished()
        if killed_at is None and done >= args.jobs // 2:
            workers[0].send_signal(signal.SIGKILL)  # mid-flight: no chance to clean up
            workers[0].wait()
            killed_at, kill_s = done, time.monotonic() - started
        if done >= args.jobs:
            break
        time.sleep(0.01)
    wall_s = time.monotonic() - started
    workers[1].send_signal(signal.SIGTERM)
    workers[1].wait(30)

    with postgres.connection() as conn:
        rows = conn.execute(
            "SELECT id, status, attempts, extract(epoch FROM finished_at - created_at) AS s"
            " FROM jobs WHERE id = ANY(%s)",
            (ids,),
        ).fetchall()
        span = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(created_at)) AS s"
            " FROM jobs WHERE id = ANY(%s)",
            (ids,),
        ).fetchone()
    runs: collections.Counter[str] = collections.Counter()
    by_worker = []
    for log in logs:
        ran = [e["job_id"] for e in log_lines(log) if e.get("message") == "job ran"]
        runs.update(ran)
        by_worker.append(len(ran))
    latencies = [float(r["s"]) * 1000 for r in rows if r["s"] is not None]
    lost = sum(1 for r in rows if r["status"] != "succeeded") + (args.jobs - len(rows))
    twice = sum(1 for count in runs.values() if count > 1)
    taken_over = sum(1 for r in rows if r["attempts"] > 1)
    span_s = float(span["s"]) if span and span["s"] is not None else wall_s

    print(
        f"{args.jobs} noop jobs ({args.sleep_ms:g} ms each), two workers x {args.concurrency},"
        f" the first SIGKILLed after {killed_at} were done;"
        f" lease and reclaim idle {args.reclaim_s:g} s\n"
    )
    print(f"submitted in       {submit_s * 1000:8.1f} ms ({args.jobs / submit_s:,.0f} submits/s)")
    if latencies:
        print(
            f"enqueue->done      p50 {percentile(latencies, 50):8.1f} ms"
            f"   p99 {percentile(latencies, 99):8.1f} ms   max {max(latencies):8.1f} ms"
        )
    print(
        f"throughput         {len(latencies) / span_s:8.1f} jobs/s first enqueue to last done"
        f" (incl. the takeover wait); {(killed_at or 0) / kill_s if kill_s else 0:.1f} jobs/s"
        " before the kill"
    )
    unlogged = len(rows) - lost - sum(runs.values())
    print(
        f"runs logged        {by_worker[0]} by the killed worker, {by_worker[1]} by the survivor"
        + (f" (+{unlogged} killed between commit and log line)" if unlogged > 0 else "")
    )
    print(f"restarted          {taken_over} (claimed by the killed worker, run again)")
    print(f"lost               {lost}   (must be 0)")
    print(f"run twice          {twice}   (must be 0)")
    return 0 if lost == 0 and twice == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
