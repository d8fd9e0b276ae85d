"""Build the CommonLayer: ``DIR/python/`` holds the ``common`` package and the runtime deps.

Usage::

    python layers/build.py --out DIR                      # for this interpreter (tests)
    python layers/build.py --out DIR \\
        --platform manylinux2014_x86_64 --python-version 3.12   # for Lambda

Lambda unpacks a layer under ``/opt`` and puts ``/opt/python`` on ``sys.path``, so
everything goes under ``DIR/python/``. The dependency list is ``[project].dependencies``
of ``pyproject.toml`` (never the ``local`` extra: it holds GPL software and servers
that do not belong on Lambda). The pip step is skipped when ``DIR/python/.deps-<hash>``
says the same list was already installed for the same target.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "common"

# The Lambda Python runtime ships boto3 and botocore (and s3transfer, which only they
# use). Nothing in the dependency list needs them today; if one starts pulling them in,
# they are deleted after the install (by their RECORD files) rather than kept out with
# a constraint, because pip has no constraint that means "do not install".
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")

LAMBDA_LIMIT_MB = 250  # function + all its layers, unzipped
MARKER_PREFIX = ".deps-"
# Packages' own test suites are never imported at run time: no bytecode for them.
NOT_COMPILED = re.compile(r"[/\\](tests?|testing)[/\\]")


def read_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``[project].dependencies``: the one list of what runs on Lambda."""
    with pyproject.open("rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def target_python_version(requested: str | None) -> str:
    return requested or f"{sys.version_info.major}.{sys.version_info.minor}"


def should_compile(python_version: str) -> bool:
    # Bytecode only helps when it is for the interpreter that runs it; /opt is read-only
    # on Lambda, so without shipped .pyc files every cold start compiles from source.
    return python_version == target_python_version(None)


def deps_key(deps: list[str], platforms: list[str], python_version: str, compiled: bool) -> str:
    """The cache key: what was asked for, and for which interpreter and platform."""
    payload = {
        "dependencies": sorted(deps),
        "platforms": sorted(platforms) or ["native"],
        "python_version": python_version,
        "excluded": list(PROVIDED_BY_RUNTIME),
        "compiled": compiled,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def pip_install(
    deps: list[str], target: Path, platforms: list[str], python_version: str | None
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--no-compile",  # compiled below, once, for the right interpreter
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]
    if platforms:
        for platform in platforms:
            cmd += ["--platform", platform]
        cmd += [
            "--python-version",
            target_python_version(python_version),
            "--implementation",
            "cp",
            "--only-binary=:all:",
        ]
    cmd += deps
    subprocess.run(cmd, check=True)


def remove_provided(target: Path) -> list[str]:
    """Delete the distributions the Lambda runtime already provides; their names."""
    removed = []
    for info in sorted(target.glob("*.dist-info")):
        meta = metadata.PathDistribution(info).metadata
        name = (meta["Name"] or "").lower().replace("_", "-")
        if name not in PROVIDED_BY_RUNTIME:
            continue
        record = info / "RECORD"
        lines = record.read_text().splitlines() if record.exists() else []
        for line in lines:
            path = (target / line.split(",", 1)[0]).resolve()
            if path.is_relative_to(target.resolve()) and path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
        removed.append(name)
    for leftover in PROVIDED_BY_RUNTIME:  # empty package folders the RECORD left behind
        shutil.rmtree(target / leftover, ignore_errors=True)
    return removed


def copy_package(target: Path) -> None:
    """A clean copy of ``common/``: no bytecode, no tests."""
    dest = target / PACKAGE
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        ROOT / PACKAGE,
        dest,
        ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "*.pyo", "tests", "test_*.py", "*_test.py", "conftest.py"
        ),
    )


def compile_tree(path: Path) -> None:
    # Unchecked hashes: zip keeps mtimes at 2 s resolution, so timestamp pycs could be
    # judged stale after Lambda unpacks the layer, and then recompiled on every cold start.
    ok = compileall.compile_dir(
        str(path),
        quiet=2,
        rx=NOT_COMPILED,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        # Some packages ship files that only parse on other versions; they are never imported.
        print(f"note: some files under {path.name} did not compile (left as source)")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def report_size(target: Path) -> int:
    sizes = sorted(
        ((dir_size(p) if p.is_dir() else p.stat().st_size, p.name) for p in target.iterdir()),
        reverse=True,
    )
    total = sum(size for size, _ in sizes)
    largest = ", ".join(f"{name} {size / 1e6:.1f}" for size, name in sizes[:6])
    print(f"largest (MB): {largest}")
    mb = total / 1e6
    print(
        f"layer size (unzipped): {mb:.1f} MB of Lambda's {LAMBDA_LIMIT_MB} MB"
        f" (function + layers); {LAMBDA_LIMIT_MB - mb:.1f} MB left for the function code"
    )
    return total


def build(
    out: Path, platforms: list[str], python_version: str | None, compile_: bool | None = None
) -> Path:
    """Build the layer into ``out``; returns ``out/python``."""
    started = time.perf_counter()
    target = out / "python"
    version = target_python_version(python_version)
    compiled = should_compile(version) if compile_ is None else compile_
    deps = read_dependencies()
    marker = target / f"{MARKER_PREFIX}{deps_key(deps, platforms, version, compiled)}"

    if marker.exists():
        print(f"dependencies: cached ({marker.name[:18]}...)")
    else:
        # A different list or target: start from nothing so no stale package lingers.
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        where = " ".join(platforms) if platforms else "this interpreter"
        print(f"dependencies: installing {len(deps)} for python {version} on {where}")
        pip_install(deps, target, platforms, python_version)
        removed = remove_provided(target)
        if removed:
            print(f"removed (the Lambda runtime provides them): {', '.join(removed)}")
        shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: unused on Lambda
        if compiled:
            compile_tree(target)
        marker.write_text(json.dumps({"dependencies": deps, "python_version": version}))

    copy_package(target)
    if compiled:
        compile_tree(target / PACKAGE)
    report_size(target)
    print(f"built {target} in {time.perf_counter() - started:.1f} s")
    return target


def _warn_if_wrong_target(platforms: list[str], python_version: str | None) -> None:
    # `sam build` runs the Makefile with ARTIFACTS_DIR set: that build is going to Lambda.
    if os.environ.get("ARTIFACTS_DIR") and not platforms:
        here = f"{sys.version_info.major}.{sys.version_info.minor} on {sys.platform}"
        print(
            f"warning: building for this interpreter ({here}); for Lambda pass"
            " --platform manylinux2014_x86_64 --python-version 3.12",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the layer root (ARTIFACTS_DIR)")
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        help="a wheel platform tag, e.g. manylinux2014_x86_64; repeat to allow several"
        " (e.g. also manylinux_2_28_x86_64: the python3.12 runtime is Amazon Linux 2023)",
    )
    parser.add_argument(
        "--python-version", help="target interpreter, e.g. 3.12 (default: this one)"
    )
    parser.add_argument(
        "--compile",
        dest="compile_",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ship .pyc files (default: only when building for this interpreter's version)",
    )
    args = parser.parse_args(argv)
    if (
        args.python_version
        and not args.platform
        and args.python_version != target_python_version(None)
    ):
        parser.error("--python-version other than this interpreter's needs --platform")
    _warn_if_wrong_target(args.platform, args.python_version)
    build(args.out.resolve(), args.platform, args.python_version, args.compile_)
    return 0


if __name__ == "__main__":
    sys.exit(main())
