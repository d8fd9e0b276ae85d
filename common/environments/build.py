"""Install a project's dependencies once per set of manifests, for its own tests.

An environment is ``DATA_DIR/envs/<project>/<hash>`` (the hash of
:func:`~common.environments.manifests.find_manifests`): Python packages in
``site-packages`` (``pip install --target``), Node packages in ``node_modules``.
It is built into a temporary sibling and renamed into place, so a half-built one is
never used; a per-project ``flock`` makes a second worker wait and then reuse it.

Installing runs on the server, outside the sandbox (it needs the network), so:
wheels only (``--only-binary=:all:``; no setup.py runs) unless ``ENV_ALLOW_SDIST``,
``npm --ignore-scripts`` (no install scripts), requirement lines that point pip at
other indexes, local paths or files outside the tree dropped, and an installer
environment built from an allow-list (never the server's keys or store URLs). The
tests then run in the sandbox with the environment bound read-only.

On disk, beside the environments: ``current.json`` (the latest attempt's hash and
state), ``<hash>.failed.json`` (a failed attempt, raised again for that hash until
``force``), ``building.json`` while a build runs, ``.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from common.config import get_settings
from common.environments.manifests import Manifests, find_manifests
from common.environments.models import EnvironmentSummary
from common.errors import EnvironmentFailed, InvalidInput
from common.logs import scrub

if TYPE_CHECKING:
    from common.jobs.context import JobContext

logger = logging.getLogger(__name__)

Progress = Callable[[str, float, str], None]

_META = "environment.json"
_CURRENT = "current.json"
_BUILDING = "building.json"
_LOCK = ".lock"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# What of the installer's output is kept for the caller.
_TAIL = 4000
# Variables the installers may see: where to find programs and packages, never the
# server's secrets. XDG_CONFIG_DIRS keeps pip's site configuration (/etc/xdg/pip).
_ALLOWED = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "XDG_CONFIG_DIRS", "SSL_CERT_FILE"}
_ALLOWED |= {"SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"}
_ALLOWED |= {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
_ALLOWED_PREFIXES = ("PIP_", "npm_config_", "NPM_CONFIG_")
# Requirement-file options that send pip somewhere else than its configured index,
# or install local code (which builds, i.e. runs, it).
_DROPPED_OPTIONS = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "-e",
    "--editable",
    "--no-binary",
    "--pre",
)


@dataclass
class Environment:
    """An installed environment.

    ``python_paths``: its site-packages (empty without Python dependencies), to put on
    PYTHONPATH; ``node_modules``: its Node packages, or None.
    """

    path: Path
    hash: str
    kind: str
    python_paths: list[str] = field(default_factory=list)
    node_modules: Path | None = None
    manifests: list[str] = field(default_factory=list)

    @property
    def read_only(self) -> list[Path]:
        """What a sandbox must bind read-only for this environment."""
        return [self.path] if self.python_paths or self.node_modules else []


def envs_root() -> Path:
    """``DATA_DIR/envs``: every project's environments."""
    return get_settings().DATA_DIR.expanduser().resolve() / "envs"


def project_envs(project_id: UUID | str) -> Path:
    """The directory of one project's environments.

    Raises
    ------
    InvalidInput
        ``project_id`` is not a plain name (a UUID, or letters, digits, ``._-``).
    """
    name = str(project_id)
    if not _PROJECT.match(name) or name in (".", ".."):
        raise InvalidInput(f"project id {name!r} cannot name a directory")
    return envs_root() / name


def ensure_environment(
    project_id: UUID | str,
    tree: Path,
    *,
    force: bool = False,
    on_progress: Progress | None = None,
) -> Environment:
    """The project's environment for ``tree``'s manifests, installed if needed.

    Parameters
    ----------
    project_id:
        Whose environments (one directory, one lock, one size bound per project).
    tree:
        The repository on disk whose manifests are installed.
    force:
        Install again even when an environment (or a failure) is recorded for the hash.
    on_progress:
        Called with ``(step, percent, message)`` as the build goes.

    Returns
    -------
    Environment
        The ready environment (``kind="none"`` and no paths when there is nothing to
        install).

    Raises
    ------
    EnvironmentFailed
        An installer failed (now or, for the same manifests, before): ``installer``
        holds its output's tail, ``manifests`` the files.
    InvalidInput
        ``tree`` is not a directory, or the project id cannot name a directory.
    """
    report = on_progress or (lambda step, percent, message: None)
    tree = Path(tree).resolve()
    if not tree.is_dir():
        raise InvalidInput(f"{tree} is not a directory")
    found = find_manifests(tree)
    home = project_envs(project_id)
    home.mkdir(parents=True, exist_ok=True)
    report("lock", 2, "waiting for the project's environment lock")
    with _locked(home):
        target = home / found.hash
        failed = home / f"{found.hash}.failed.json"
        if force:
            _remove(target)
            failed.unlink(missing_ok=True)
        existing = _load(target)
        if existing is not None:
            # The directory's mtime is its last use: eviction goes by it.
            os.utime(target)
            _write_json(home / _CURRENT, {"hash": found.hash, "state": "ready"})
            report("ready", 100, "environment reused")
            return existing
        if failed.exists():
            _raise_recorded(failed)
        environment = _build(home, tree, found, report)
        _write_json(home / _CURRENT, {"hash": found.hash, "state": "ready"})
        _evict(home, keep=found.hash)
    report("ready", 100, "environment ready")
    return environment


def remove_environments(project_id: UUID | str) -> None:
    """Delete every environment of a project (and its records); none is fine."""
    home = project_envs(project_id)
    if not home.exists():
        return
    with _locked(home):
        for entry in home.iterdir():
            if entry.name == _LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                _remove(entry)
            else:
                entry.unlink(missing_ok=True)
    shutil.rmtree(home, ignore_errors=True)


def environment_summary(project_id: UUID | str) -> EnvironmentSummary | None:
    """The project's environment as found on disk.

    Returns
    -------
    EnvironmentSummary | None
        ``"building"`` while a build holds the lock, else the latest attempt's state
        (``"ready"`` or ``"failed"`` with its error); None when the project never had one.
    """
    home = project_envs(project_id)
    if not home.is_dir():
        return None
    building = _read_json(home / _BUILDING)
    if building is not None and _lock_held(home):
        return EnvironmentSummary(
            state="building",
            hash=building.get("hash"),
            kind=building.get("kind"),
            manifests=building.get("manifests", []),
        )
    current = _read_json(home / _CURRENT)
    if current is None:
        return EnvironmentSummary(state="none")
    digest = str(current.get("hash", ""))
    if current.get("state") == "failed":
        record = _read_json(home / f"{digest}.failed.json") or {}
        return EnvironmentSummary(
            state="failed",
            hash=digest,
            kind=record.get("kind"),
            manifests=record.get("manifests", []),
            error=record.get("installer") or record.get("message"),
        )
    meta = _read_json(home / digest / _META) if _HASH.match(digest) else None
    if meta is None:
        return EnvironmentSummary(state="none")
    return EnvironmentSummary(
        state="ready",
        hash=digest,
        kind=meta.get("kind"),
        manifests=meta.get("manifests", []),
        size_bytes=meta.get("size_bytes"),
        built_at=meta.get("built_at"),
    )


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``project_env``: ``{"project_id", "tree", "force"}`` → the summary.

    ``tree`` must lie under ``DATA_DIR`` (the server's stored projects): a job's input
    must not make the server read manifests from anywhere on the host.

    Raises
    ------
    InvalidInput
        A missing field, or a tree outside ``DATA_DIR``.
    EnvironmentFailed
        The installer failed.
    """
    project_id = input.get("project_id")
    tree = input.get("tree")
    if not project_id or not isinstance(tree, str) or not tree:
        raise InvalidInput("`project_id` and `tree` are required")
    data_dir = get_settings().DATA_DIR.expanduser().resolve()
    resolved = Path(tree).resolve()
    if not resolved.is_relative_to(data_dir):
        raise InvalidInput("`tree` must be a directory of the server's stored projects")
    environment = ensure_environment(
        str(project_id), resolved, force=bool(input.get("force")), on_progress=ctx.progress
    )
    summary = environment_summary(str(project_id))
    result: dict[str, Any] = summary.model_dump(mode="json") if summary else {}
    result["python_paths"] = environment.python_paths
    result["node_modules"] = str(environment.node_modules) if environment.node_modules else None
    return result


# -- building ----------------------------------------------------------------------


def _build(home: Path, tree: Path, found: Manifests, report: Progress) -> Environment:
    target = home / found.hash
    _write_json(
        home / _BUILDING,
        {"hash": found.hash, "kind": found.kind, "manifests": found.paths, "pid": os.getpid()},
    )
    staging = Path(tempfile.mkdtemp(prefix=f".build-{found.hash[:12]}-", dir=home))
    scratch = Path(tempfile.mkdtemp(prefix="ao-env-home-"))
    try:
        try:
            if found.python:
                report("python", 10, "installing Python dependencies")
                _install_python(staging, tree, found, scratch)
            if found.node:
                report("node", 55, "installing Node dependencies")
                _install_node(staging, tree, found, scratch)
        except EnvironmentFailed as exc:
            record = {
                "hash": found.hash,
                "kind": found.kind,
                "manifests": found.paths,
                "message": exc.message,
                "installer": exc.details.get("installer", ""),
                "failed_at": datetime.now(UTC).isoformat(),
            }
            _write_json(home / f"{found.hash}.failed.json", record)
            _write_json(home / _CURRENT, {"hash": found.hash, "state": "failed"})
            raise
        report("finish", 90, "recording the environment")
        meta = {
            "hash": found.hash,
            "kind": found.kind,
            "manifests": found.paths,
            "size_bytes": _size(staging),
            "built_at": datetime.now(UTC).isoformat(),
        }
        _write_json(staging / _META, meta)
        # Readable by the sandbox's own uid; nobody but us writes.
        os.chmod(staging, 0o755)
        os.rename(staging, target)
    finally:
        _remove(staging)
        shutil.rmtree(scratch, ignore_errors=True)
        (home / _BUILDING).unlink(missing_ok=True)
    environment = _load(target)
    assert environment is not None
    return environment


def _install_python(staging: Path, tree: Path, found: Manifests, scratch: Path) -> None:
    lines: list[str] = []
    for rel in found.requirements:
        lines += _requirement_lines(tree / rel, tree, depth=0)
    lines += found.python_requirements
    requirements = scratch / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(staging / "site-packages"),
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--progress-bar=off",
    ]
    if not get_settings().ENV_ALLOW_SDIST:
        # A wheel is unpacked, never executed; an sdist's build runs its setup code here.
        argv.append("--only-binary=:all:")
    argv += ["-r", str(requirements)]
    _run_installer(argv, cwd=scratch, home=scratch, found=found, what="pip")


def _requirement_lines(path: Path, tree: Path, *, depth: int) -> list[str]:
    """A requirements file's lines, nested ``-r``/``-c`` files (inside the tree) inlined,
    the options that leave pip's configured index or install local code dropped."""
    if depth > 5:
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    kept: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option, _, value = line.partition(" ")
        if "=" in option and option.startswith("--"):
            option, _, value = option.partition("=")
        value = value.strip()
        if option in ("-r", "--requirement", "-c", "--constraint"):
            nested = (path.parent / value).resolve()
            if not nested.is_relative_to(tree) or not nested.is_file():
                continue
            if option in ("-r", "--requirement"):
                kept += _requirement_lines(nested, tree, depth=depth + 1)
            else:
                kept.append(f"-c {nested}")
            continue
        if option in _DROPPED_OPTIONS or line.startswith(("-", ".", "/", "file:")):
            continue
        kept.append(line)
    return kept


def _install_node(staging: Path, tree: Path, found: Manifests, scratch: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise EnvironmentFailed(
            "npm is not installed on this server",
            details={"installer": "", "manifests": found.paths},
        )
    assert found.package_json is not None
    shutil.copyfile(tree / found.package_json, staging / "package.json")
    common = ["--ignore-scripts", "--no-audit", "--no-fund"]
    if found.node_lock:
        shutil.copyfile(tree / found.node_lock, staging / found.node_lock)
        argv = [npm, "ci", *common]
    else:
        argv = [npm, "install", *common, "--package-lock=false"]
    _run_installer(argv, cwd=staging, home=scratch, found=found, what="npm")


def _installer_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ALLOWED or k.startswith(_ALLOWED_PREFIXES)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _spawn(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run an installer (one place, so tests can see whether one ran)."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_installer(argv: list[str], *, cwd: Path, home: Path, found: Manifests, what: str) -> None:
    timeout = get_settings().ENV_BUILD_TIMEOUT_S
    try:
        done = _spawn(argv, cwd=cwd, env=_installer_env(home), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr if isinstance(exc.stderr, str) else ""
        raise EnvironmentFailed(
            f"{what} did not finish within {timeout:.0f} s",
            details={"installer": _tail(output), "manifests": found.paths},
        ) from exc
    except OSError as exc:
        raise EnvironmentFailed(
            f"{what} could not start: {exc.strerror}",
            details={"installer": "", "manifests": found.paths},
        ) from exc
    if done.returncode != 0:
        output = done.stderr.strip() or done.stdout
        raise EnvironmentFailed(
            f"{what} could not install the project's dependencies (exit {done.returncode})",
            details={"installer": _tail(output), "manifests": found.paths},
        )


def _tail(text: str) -> str:
    return scrub(text[-_TAIL:])


# -- on disk -----------------------------------------------------------------------


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    fd = os.open(home / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _lock_held(home: Path) -> bool:
    try:
        fd = os.open(home / _LOCK, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _load(target: Path) -> Environment | None:
    meta = _read_json(target / _META)
    if meta is None:
        return None
    site = target / "site-packages"
    modules = target / "node_modules"
    return Environment(
        path=target,
        hash=str(meta.get("hash", target.name)),
        kind=str(meta.get("kind", "none")),
        python_paths=[str(site)] if site.is_dir() else [],
        node_modules=modules if modules.is_dir() else None,
        manifests=list(meta.get("manifests", [])),
    )


def _raise_recorded(path: Path) -> None:
    record = _read_json(path) or {}
    raise EnvironmentFailed(
        str(record.get("message") or "the project's dependencies could not be installed"),
        details={
            "installer": str(record.get("installer", "")),
            "manifests": list(record.get("manifests", [])),
        },
    )


def _evict(home: Path, *, keep: str) -> None:
    """Remove the project's other environments, least recently used first, until all
    together fit ``ENV_MAX_BYTES`` (the one just used always stays)."""
    bound = get_settings().ENV_MAX_BYTES
    others: list[tuple[float, Path, int]] = []
    total = 0
    for entry in home.iterdir():
        if not _HASH.match(entry.name) or not entry.is_dir():
            continue
        meta = _read_json(entry / _META) or {}
        size = int(meta.get("size_bytes") or _size(entry))
        total += size
        if entry.name != keep:
            others.append((entry.stat().st_mtime, entry, size))
    for _, entry, size in sorted(others, key=lambda item: item[0]):
        if total <= bound:
            break
        logger.info("environments: evicting %s (%d bytes)", entry.name, size)
        _remove(entry)
        total -= size


def _size(top: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _remove(path: Path) -> None:
    # Rename first: a reader never sees a half-removed environment under its hash.
    if not path.exists():
        return
    doomed = path.with_name(f".doomed-{path.name}-{time.monotonic_ns()}")
    try:
        os.rename(path, doomed)
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Through a temporary file and a rename: a reader sees the old or the new, whole.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
