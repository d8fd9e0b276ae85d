"""Cold-start cost of each handler, measured in fresh interpreters.

For each ``functions/<name>/handler.py``, the median over N fresh processes of:

  (a) ``import fastapi`` alone: the floor any handler pays (the baseline);
  (b) importing the handler module;
  (c) importing it and answering a first event (Mangum, FastAPI, Powertools, the
      error mapper and whatever the route touches).

Times are taken inside the child around the import and the call, so interpreter start-up
is left out. ``--layer DIR/python`` runs the children Lambda-style instead: ``python
-S -I -B`` with only the layer and the function's folder on ``sys.path``.

Usage: python bench/cold_start.py [-n 7] [--layer build/test-layer/python]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.utils.lambda_events import http_event  # noqa: E402 - needs ROOT on the path

CHILD = """
import importlib, json, sys, time

mode, name, event_json, lambda_style = sys.argv[1:5]
if lambda_style != "-":
    sys.path[:0] = [lambda_style, sys.argv[5]]

class LambdaContext:
    function_name = f"bench-{name}"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:bench-{name}"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = f"/aws/lambda/bench-{name}"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self):
        return 29_000

status = None
started = time.perf_counter()
if mode == "baseline":
    import fastapi
else:
    target = "handler" if lambda_style != "-" else f"functions.{name}.handler"
    module = importlib.import_module(target)
    if mode == "call":
        status = module.handler(json.loads(event_json), LambdaContext())["statusCode"]
ms = (time.perf_counter() - started) * 1000
print("BENCH " + json.dumps({"ms": ms, "status": status}))
"""


@dataclass
class Case:
    """One handler's first event, and the environment it runs in."""

    name: str
    event: dict[str, object]
    env: dict[str, str]
    what: str
    statuses: set[int] = field(default_factory=set)


def closed_port() -> int:
    # A port nothing listens on: bound then released, so a connect is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    # Not this shell's environment: a developer's *_URL must not change what is measured.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "ENV_FILE": "",
        "LOG_LEVEL": "ERROR",
        "POWERTOOLS_SERVICE_NAME": "ai-orchestrator",
        "POWERTOOLS_METRICS_NAMESPACE": "AIOrchestrator",
    }


def cases(handlers: list[str]) -> list[Case]:
    port = closed_port()
    closed = {
        "DATABASE_URL": f"postgresql://bench:bench@127.0.0.1:{port}/bench",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "MONGODB_URL": f"mongodb://127.0.0.1:{port}/bench",
        "QDRANT_URL": f"http://127.0.0.1:{port}",
        "OLLAMA_HOST": f"http://127.0.0.1:{port}",
    }
    found = []
    for name in handlers:
        if name == "explain":
            found.append(
                Case(
                    name,
                    http_event(
                        "POST", "/api/explain", body={"code": "print('hi')", "language": "python"}
                    ),
                    base_env(),
                    "POST /api/explain without X-API-Key (meant to be 401), no store URLs",
                )
            )
        elif name == "health":
            found.append(
                Case(
                    name,
                    http_event("GET", "/api/health"),
                    {**base_env(), **closed},
                    "GET /api/health, every store URL and OLLAMA_HOST on a closed loopback port",
                )
            )
            found.append(
                Case(
                    name,
                    http_event("GET", "/api/health"),
                    {**base_env(), "AWS_LAMBDA_FUNCTION_NAME": "bench-health", **_only(closed)},
                    "GET /api/health, store URLs unset (Lambda mode), OLLAMA_HOST closed",
                )
            )
        else:
            found.append(Case(name, {}, base_env(), "(no first event defined: import only)"))
    return found


def _only(closed: dict[str, str]) -> dict[str, str]:
    return {"OLLAMA_HOST": closed["OLLAMA_HOST"]}


def run_once(mode: str, case: Case, layer: Path | None) -> tuple[float, int | None]:
    argv = [sys.executable]
    if layer is not None:
        argv += ["-S", "-I", "-B"]
    argv += ["-c", CHILD, mode, case.name, json.dumps(case.event)]
    argv += [str(layer), str(ROOT / "functions" / case.name)] if layer else ["-"]
    done = subprocess.run(argv, cwd=ROOT, env=case.env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{case.name} {mode} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("BENCH "))
    result = json.loads(line.removeprefix("BENCH "))
    return float(result["ms"]), result["status"]


def median_ms(mode: str, case: Case, runs: int, layer: Path | None) -> float:
    times = []
    for _ in range(runs):
        ms, status = run_once(mode, case, layer)
        times.append(ms)
        if status is not None:
            case.statuses.add(int(status))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cold-start cost of each handler.")
    parser.add_argument("-n", "--runs", type=int, default=7, help="fresh processes per figure")
    parser.add_argument(
        "--layer", type=Path, help="a built layer's python/ folder: run Lambda-style from it"
    )
    args = parser.parse_args(argv)
    layer = args.layer.resolve() if args.layer else None
    handlers = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
    all_cases = cases(handlers)

    where = f"Lambda-style from {layer}" if layer else "this virtualenv"
    print(f"cold start, median of {args.runs} fresh processes, {where}")
    print(f"python {sys.version.split()[0]}; times exclude interpreter start-up\n")
    baseline_case = Case("baseline", {}, base_env(), "import fastapi")
    baseline = median_ms("baseline", baseline_case, args.runs, layer)

    header = f"{'handler':<10}{'(a) fastapi':>13}{'(b) import':>12}{'(c) +call':>12}"
    header += f"{'(b)/(a)':>9}{'(c)/(a)':>9}  status  first event"
    print(header)
    print("-" * len(header))
    imported: dict[str, float] = {}
    for case in all_cases:
        if case.name not in imported:
            imported[case.name] = median_ms("import", case, args.runs, layer)
        b = imported[case.name]
        c = median_ms("call", case, args.runs, layer) if case.event else float("nan")
        status = ",".join(str(s) for s in sorted(case.statuses)) or "-"
        print(
            f"{case.name:<10}{baseline:>11.0f}ms{b:>10.0f}ms{c:>10.0f}ms"
            f"{b / baseline:>9.1f}{c / baseline:>9.1f}  {status:<6}  {case.what}"
        )
    print(
        "\n(a) and (b) are import time only; (c) includes the route's own work: the health"
        " rows wait on each store's connect timeout or refusal, the explain row on nothing."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
