"""Typed errors of the shared layer.

Every error a caller can see is an :class:`AppError` with an HTTP status and a
stable ``code``. ``common`` raises these and never an HTTP framework's exception;
``common.web.errors`` renders them, once, for both doors, as
``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error that reaches a client.

    Parameters
    ----------
    message:
        One sentence for a human. Never put a secret in it: it is returned and logged.
    details:
        Extra JSON-safe fields merged into the error body (for example ``fields``).
    headers:
        HTTP headers to send with the error (for example ``Retry-After``).
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class MalformedJson(BadRequest):
    code = "malformed_json"


class InvalidInput(AppError):
    status = 422
    code = "invalid_input"


class EnvironmentFailed(AppError):
    """A project's dependencies could not be installed; ``installer`` holds the tail of
    the installer's output, ``manifests`` the files it installed from."""

    status = 422
    code = "environment_failed"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class NotFound(AppError):
    status = 404
    code = "not_found"


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"


class Conflict(AppError):
    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(
            message,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class ModelOutputInvalid(AppError):
    status = 502
    code = "model_output_invalid"


class ModelUnavailable(AppError):
    """The model server cannot be reached (or answered with a server error)."""

    status = 503
    code = "model_unavailable"


class ModelNotPulled(AppError):
    status = 503
    code = "model_not_pulled"


class StoreUnavailable(AppError):
    status = 503
    code = "store_unavailable"


class GitUnavailable(AppError):
    """This process cannot run git: no binary on PATH (on Lambda: no GitLayer)."""

    status = 503
    code = "git_unavailable"


class ModelTimeout(AppError):
    status = 504
    code = "model_timeout"


class ConfigError(Exception):
    """A configuration value is missing or malformed.

    Raised at start-up (local server, CLI, Lambda cold start). The message is one
    line that names the variable and never echoes its value.
    """


class ModelError(AppError):
    """The model server answered, but with an error we cannot fix by retrying here."""

    status = 502
    code = "model_error"


class GitHostError(AppError):
    """A git host's REST API (GitHub, GitLab, Bitbucket) failed, timed out, could not be
    reached, or answered in a way we cannot use."""

    status = 502
    code = "git_host_error"


class BadSignature(Unauthorized):
    """A webhook delivery whose signature (or token) does not verify with the project's
    secret: it may not be from the host, so nothing in it is acted on."""

    code = "bad_signature"
