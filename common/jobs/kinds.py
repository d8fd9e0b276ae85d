"""The job kinds: a name → ``"module:function"`` of its runner, imported on first use.

A worker imports only the runner a job needs (an action's module pulls in its
agents and model clients), and submitting never imports any runner: checking a
kind is a dictionary lookup.

A runner is ``def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]``
and returns a JSON-able result; it raises ``AppError`` for a failure the client
should see, and calls ``ctx.progress``/``ctx.on_token`` as it goes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.errors import InvalidInput

if TYPE_CHECKING:
    from common.jobs.context import JobContext

Runner = Callable[[dict[str, Any], "JobContext"], Any]

KINDS: dict[str, str] = {
    "noop": "common.jobs.builtin:noop",
    "generate": "common.actions.generate:run_job",
    "migrate": "common.actions.migrate:run_job",
    "fix": "common.actions.fix:run_job",
    "test": "common.actions.tests:run_job",
    "optimize": "common.actions.optimize:run_job",
    "analyze": "common.actions.analyze:run_job",
    "security_scan": "common.security.scan:run_job",
    "figma": "common.figma.service:run_job",
    "kubernetes": "common.kubernetes.generate:run_job",
    "git_sync": "common.git.service:run_sync_job",
    "git_merge": "common.git.service:run_merge_job",
    # A project's stored files into its index (common/memory/project_index.py).
    "index": "common.memory.project_index:run_job",
    # An S3 upload's finishing read: its SHA-256, and unpacking (common/storage/s3_uploads.py).
    "storage_finish": "common.storage.s3_uploads:run_finish_job",
    # A project's dependencies installed for its own tests (common/environments/build.py).
    "project_env": "common.environments.build:run_job",
    # A verified result applied to the project: a pushed branch and PR, or a new
    # revision of its stored files (common/git/changes.py).
    "project_change": "common.git.changes:run_job",
    # A change judged on what it changed (common/review/service.py).
    "review": "common.review.service:run_job",
    # A pull request's review from its webhook, posted back (common/review/pull_requests.py).
    "pr_review": "common.review.pull_requests:run_job",
}

_loaded: dict[str, Runner] = {}


def check_kind(kind: str) -> None:
    """Refuse a kind nobody can run, before anything is stored.

    Raises
    ------
    InvalidInput
        ``kind`` is not in :data:`KINDS`; ``kinds`` in the error lists the known ones.
    """
    if kind not in KINDS:
        raise InvalidInput(f"unknown job kind {kind!r}", details={"kinds": sorted(KINDS)})


def load_runner(kind: str) -> Runner:
    """The runner of ``kind``, imported on first use.

    Raises
    ------
    InvalidInput
        Unknown kind, or its module or function cannot be found.
    """
    check_kind(kind)
    target = KINDS[kind]
    cached = _loaded.get(target)
    if cached is not None:
        return cached
    module_name, _, attribute = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"job kind {kind!r} is not available in this worker") from exc
    if not callable(found):
        raise InvalidInput(f"job kind {kind!r} is not available in this worker")
    runner: Runner = found
    _loaded[target] = runner
    return runner
