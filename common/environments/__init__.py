"""A project's own dependencies, installed once per set of manifests, for its own tests.

- :mod:`~common.environments.manifests`: which files declare the dependencies, and
  one hash over them (plus the Python version): the environment's identity.
- :mod:`~common.environments.build`: :func:`ensure_environment` installs them (pip
  ``--target``, wheels only; ``npm ci --ignore-scripts``) under
  ``DATA_DIR/envs/<project>/<hash>``, outside the sandbox but with a clean environment,
  and reuses what is there; a failure is recorded and not retried for the same hash.
- :mod:`~common.environments.testplan`: how the repository runs its tests.
- :mod:`~common.environments.run`: :func:`run_repository_tests` runs them in the
  sandbox with the environment bound read-only.

This package module stays light (an HTTP handler imports the summary): the
installers and the sandbox are imported by the submodules only.
"""

from __future__ import annotations

from uuid import UUID

from common.environments.models import EnvironmentSummary

__all__ = ["EnvironmentSummary", "environment_summary"]


def environment_summary(project_id: UUID | str) -> EnvironmentSummary | None:
    """The project's environment as found on disk (see :func:`build.environment_summary`)."""
    from common.environments.build import environment_summary as summary

    return summary(project_id)
