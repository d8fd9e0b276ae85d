"""``GET /v1/files/:key`` from Figma's REST API, streamed to a callback.

The token is sent once, in the ``X-Figma-Token`` header, and goes nowhere else:
not into a log line, an error message, an exception's chain, a stored document or
a job. Figma's errors become typed errors (:mod:`common.figma.errors`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import quote

from common.config import get_settings
from common.errors import InvalidInput, PayloadTooLarge
from common.figma.errors import (
    FigmaForbidden,
    FigmaNotFound,
    FigmaRateLimited,
    FigmaTimeout,
    FigmaUnavailable,
)
from common.logs import get_logger

log = get_logger("figma.fetch")

CONNECT_TIMEOUT_S = 10.0
READ_CHUNK_BYTES = 256 * 1024
# An error body is read for its message only: a few KB at most.
MAX_ERROR_BYTES = 8192
DEFAULT_RETRY_AFTER_S = 60


def fetch_file(
    file_key: str,
    token: str,
    *,
    on_bytes: Callable[[bytes], None],
    max_bytes: int | None = None,
) -> int:
    """Stream file ``file_key``'s JSON to ``on_bytes``; the number of bytes read.

    Raises
    ------
    FigmaForbidden, FigmaNotFound, FigmaRateLimited
        Figma answered 401/403, 404, 429.
    FigmaUnavailable, FigmaTimeout
        Figma could not be reached, failed (5xx), or did not finish in FIGMA_TIMEOUT.
    InvalidInput
        Figma refused the request as malformed (400).
    PayloadTooLarge
        The file is larger than FIGMA_MAX_BODY_BYTES.
    """
    import httpx

    settings = get_settings()
    limit = max_bytes or settings.FIGMA_MAX_BODY_BYTES
    base = (settings.FIGMA_API_URL or "https://api.figma.com").rstrip("/")
    url = f"{base}/v1/files/{quote(file_key, safe='')}"
    timeout = httpx.Timeout(settings.FIGMA_TIMEOUT, connect=CONNECT_TIMEOUT_S)
    # httpx's timeouts are per read; a slow trickle must not outlive the whole budget.
    deadline = time.monotonic() + settings.FIGMA_TIMEOUT
    received = 0
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", url, headers={"X-Figma-Token": token}) as response,
        ):
            if response.status_code != 200:
                raise _error(response, file_key, token)
            for chunk in response.iter_bytes(READ_CHUNK_BYTES):
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("FIGMA_TIMEOUT")
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(
                        f"Figma file {file_key} is larger than FIGMA_MAX_BODY_BYTES"
                        f" ({limit} bytes)",
                        details={"max_bytes": limit},
                    )
                on_bytes(chunk)
    except httpx.TimeoutException:
        # `from None`: httpx's exception holds the request, headers and all.
        raise FigmaTimeout(
            f"Figma did not send file {file_key} within FIGMA_TIMEOUT"
            f" ({settings.FIGMA_TIMEOUT:g} s)"
        ) from None
    except httpx.HTTPError as exc:
        raise FigmaUnavailable(
            f"Figma's API (FIGMA_API_URL) could not be reached: {type(exc).__name__}"
        ) from None
    log.info("figma file fetched", extra={"file_key": file_key, "bytes": received})
    return received


def _error(response: object, file_key: str, token: str) -> Exception:
    import httpx

    assert isinstance(response, httpx.Response)
    status = response.status_code
    said = _figma_message(response, token)
    because = f": {said}" if said else ""
    if status in (401, 403):
        return FigmaForbidden(
            f"Figma refused the token for file {file_key} ({status}{because}); check that it"
            " is valid and can read the file (scope file_content:read)"
        )
    if status == 404:
        return FigmaNotFound(f"Figma has no file {file_key} (404{because})")
    if status == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        return FigmaRateLimited(
            f"Figma's rate limit was reached (429{because}); retry in {retry_after} s",
            retry_after=retry_after,
        )
    if status == 400:
        return InvalidInput(f"Figma refused the request for file {file_key} (400{because})")
    return FigmaUnavailable(f"Figma failed to send file {file_key} ({status}{because})")


def _figma_message(response: object, token: str) -> str:
    """Figma's own words (``{"status", "err"}``), short, and never anything with the token."""
    import httpx

    assert isinstance(response, httpx.Response)
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_ERROR_BYTES:
            break
    try:
        message = json.loads(body.decode("utf-8", "replace")).get("err")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(message, str) or token in message:
        return ""
    return " ".join(message.split())[:200]


def _retry_after(value: str | None) -> int:
    try:
        return max(1, int(float(value or "")))
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
