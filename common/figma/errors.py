"""Figma's API errors as the typed errors a client sees.

Each keeps the shared ``{"error": {"code", "message"}}`` shape (they are
:class:`~common.errors.AppError` subclasses, rendered by the one mapper) with a
code of its own, so a client can tell "Figma refused your token" from our own 401.
"""

from __future__ import annotations

from common.errors import AppError, NotFound, RateLimited


class FigmaForbidden(AppError):
    """Figma refused the token (401/403): wrong, expired, or without access to the file."""

    status = 403
    code = "figma_forbidden"


class FigmaNotFound(NotFound):
    code = "figma_file_not_found"


class FigmaRateLimited(RateLimited):
    code = "figma_rate_limited"


class FigmaUnavailable(AppError):
    """Figma (FIGMA_API_URL) could not be reached, or failed on its side."""

    status = 502
    code = "figma_unavailable"


class FigmaTimeout(AppError):
    status = 504
    code = "figma_timeout"
