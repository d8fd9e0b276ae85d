"""The HTTP edge shared by both doors: app factory, error mapping, auth dependency.

This is the only package in ``common`` that knows FastAPI; ``lambda_entry`` is the
only module that knows Lambda.
"""

from common.web.app import create_app
from common.web.deps import ModelDep, PrincipalDep, SettingsDep, run_blocking

__all__ = ["ModelDep", "PrincipalDep", "SettingsDep", "create_app", "run_blocking"]
