"""Time one entry point of a Python file in the sandbox, as ``timeit`` would."""

from __future__ import annotations

import json
import sys
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from common.sandbox import Limits

TIMING_SCRIPT = "_ao_timing.py"

# Runs inside the sandbox: autorange picks a loop count worth ~0.2 s, then the best
# of `repeat` loops is the figure (the least disturbed by the machine's other work).
_SCRIPT = """\
import importlib, json, sys, timeit
sys.path.insert(0, ".")
spec = json.loads(sys.argv[1])
fn = getattr(importlib.import_module(spec["module"]), spec["function"])
args, kwargs = spec["args"], spec["kwargs"]
result = fn(*args, **kwargs)
timer = timeit.Timer(lambda: fn(*args, **kwargs))
number, _ = timer.autorange()
runs = sorted(t / number * 1000 for t in timer.repeat(repeat=spec["repeat"], number=number))
print(json.dumps({"best_ms": runs[0], "median_ms": runs[len(runs) // 2],
                  "loops": number, "result": repr(result)[:2000]}))
"""


class Benchmark(BaseModel):
    """An entry point of the primary (Python) file and the arguments to time it with."""

    function: str = Field(pattern=r"^[A-Za-z_]\w*$", max_length=100)
    model_config = ConfigDict(populate_by_name=True)

    args: list[Any] = Field(default_factory=list, max_length=20)
    # An alias: a field named "kwargs" confuses pydantic's mypy plugin.
    keyword_args: dict[str, Any] = Field(default_factory=dict, max_length=20, alias="kwargs")
    repeat: int = Field(5, ge=1, le=20)


class Timing(BaseModel):
    best_ms: float
    median_ms: float
    loops: int
    result: str


class Timings(BaseModel):
    before: Timing
    after: Timing
    speedup: float = Field(description="before.best_ms / after.best_ms")
    same_result: bool


def module_name(path: str) -> str:
    return ".".join(PurePosixPath(path).with_suffix("").parts)


def time_call(
    files: dict[str, str], path: str, bench: Benchmark, *, limits: Limits
) -> Timing | str:
    """The timing, or the reason it could not be measured."""
    from common.sandbox import Sandbox

    spec = {
        "module": module_name(path),
        "function": bench.function,
        "args": bench.args,
        "kwargs": bench.keyword_args,
        "repeat": bench.repeat,
    }
    with Sandbox({**files, TIMING_SCRIPT: _SCRIPT}, limits=limits) as box:
        run = box.run([sys.executable, TIMING_SCRIPT, json.dumps(spec)])
    if not run.ok:
        tail = (run.stderr or run.stdout)[-1500:]
        return "timed out" if run.timed_out else f"the timing run failed: {tail}"
    try:
        return Timing.model_validate_json(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"the timing run printed no figures: {run.stdout[-500:]}"
