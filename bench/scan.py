"""The security scan against bandit alone, on the same real tree.

The tree is an installed library's source (``rich`` by default, or ``--tree``).
The baseline is bandit's own command line (``python -m bandit -r TREE``); the full
scan (bandit, semgrep with the repository's rules when installed, secret patterns
and detect-secrets, the dependency check, the SARIF log) runs as
``common.security.scan.scan_files`` in a fresh interpreter too, so both pay for
starting Python. Each is run ``--repeat`` times, alternating; the medians and
their ratio are printed (the goal: at most 1.3x), with the CPU time each used
(the full scan does about twice bandit's work and spreads it over the cores, so
on a loaded machine the wall ratio drifts towards the CPU ratio).

    .venv/bin/python bench/scan.py [--tree DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL = 1.3
SUFFIXES = {".py", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".json", ".toml", ".txt", ".lock"}


def default_tree() -> Path:
    spec = importlib.util.find_spec("rich")
    if spec is None or spec.origin is None:
        raise SystemExit("rich is not installed: pass --tree DIR")
    return Path(spec.origin).parent


def read_tree(tree: Path) -> dict[str, str]:
    files = {}
    for path in sorted(tree.rglob("*")):
        if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
            try:
                files[str(path.relative_to(tree))] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return files


def child(tree: Path) -> int:
    # The measured side: read the tree, scan it, build the SARIF log, say what ran.
    from common.security.advisories import MemoryAdvisoryStore, snapshot_advisories
    from common.security.sarif import build_sarif
    from common.security.scan import scan_files

    files = read_tree(tree)
    result = scan_files(
        files, advisories=MemoryAdvisoryStore(snapshot_advisories()), advisory_source="snapshot"
    )
    sarif = build_sarif(result.numbered(), result.runs, versions=result.versions)
    json.dump(
        {
            "files": len(files),
            "findings": len(result.findings),
            "sarif_results": sum(len(r["results"]) for r in sarif["runs"]),
            "runs": {r.name: [r.ran, r.findings, r.duration_ms, r.message] for r in result.runs},
        },
        sys.stdout,
    )
    return 0


def timed(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the command and its children) and its output."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    if done.returncode not in (0, 1):  # bandit exits 1 when it found something
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, cpu, done.stdout


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    tree = (args.tree or default_tree()).resolve()
    python_files = [p for p in tree.rglob("*.py") if "__pycache__" not in p.parts]
    lines = sum(len(p.read_text(errors="replace").splitlines()) for p in python_files)
    print(f"tree: {tree} ({len(python_files)} Python files, {lines} lines)")
    baseline_cmd = [sys.executable, "-m", "bandit", "-q", "-r", str(tree), "-f", "json"]
    full_cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(tree)]
    load = os.getloadavg()[0]
    timed(baseline_cmd)  # warm the page cache and the .pyc files, not counted
    timed(full_cmd)
    bandit_s: list[float] = []
    full_s: list[float] = []
    bandit_cpu: list[float] = []
    full_cpu: list[float] = []
    report: dict[str, object] = {}
    for _ in range(args.repeat):
        wall, cpu, _out = timed(baseline_cmd)
        bandit_s.append(wall)
        bandit_cpu.append(cpu)
        wall, cpu, out = timed(full_cmd)
        full_s.append(wall)
        full_cpu.append(cpu)
        report = json.loads(out)
    bandit_median, full_median = statistics.median(bandit_s), statistics.median(full_s)
    ratio = full_median / bandit_median
    cpu_ratio = statistics.median(full_cpu) / statistics.median(bandit_cpu)
    runs = report.get("runs", {})
    assert isinstance(runs, dict)
    for name, (ran, found, ms, message) in runs.items():
        state = f"{found} findings in {ms} ms" if ran else f"did not run: {message}"
        print(f"  {name:13} {state}")
    print(f"SARIF results: {report.get('sarif_results')}")
    print(f"cores: {os.cpu_count()}, load average before: {load:.2f}")
    print(f"bandit alone: {bandit_median:.2f} s wall, {statistics.median(bandit_cpu):.2f} s CPU")
    print(f"full scan:    {full_median:.2f} s wall, {statistics.median(full_cpu):.2f} s CPU")
    print(
        f"ratio: {ratio:.2f}x wall (goal <= {GOAL}x: {'ok' if ratio <= GOAL else 'OVER'}),"
        f" {cpu_ratio:.2f}x CPU (medians of {args.repeat})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
