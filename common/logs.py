"""Structured JSON logs for both doors, with secrets scrubbed on the way out.

One Powertools ``Logger`` is the parent; modules log through ``get_logger(name)``,
a stdlib child that propagates to it, so the Lambda context and request ids the
doors add reach every line. A filter on the parent's handler masks API keys,
bearer tokens and URL passwords even if a caller slips one into a message.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aws_lambda_powertools import Logger

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ai-orchestrator")

_SECRET_PATTERNS = [
    # Our own API keys: keep the visible prefix so a log line still says which key.
    (re.compile(r"\b(ao_[a-z0-9]{8})_[A-Za-z0-9_\-]{8,}"), r"\1_***"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1***"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), r"\1***@"),
    (re.compile(r"(?i)\b((?:api_key|token|password|secret)=)[^&\s'\"]+"), r"\1***"),
    (re.compile(r"\b(gh[pousr]_|glpat-|xox[baprs]-|figd_)[A-Za-z0-9_\-]{10,}"), r"\1***"),
    # Git hosts' tokens (common/git): GitHub fine-grained, Bitbucket app passwords/tokens.
    (re.compile(r"\b(github_pat_|ATBB|ATCTT3x)[A-Za-z0-9_\-=]{16,}"), r"\1***"),
]


def scrub(text: str) -> str:
    """Mask anything that looks like a secret in ``text``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """``url`` with any password replaced, safe to show or log."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if record.args:
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                record.__dict__[key] = scrub(value)
        return True


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time, not at import: test capture works."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


logger = Logger(
    service=SERVICE, level=os.environ.get("LOG_LEVEL", "INFO"), logger_handler=_StdoutHandler()
)
logger.registered_handler.addFilter(_ScrubFilter())


def get_logger(name: str) -> logging.Logger:
    """A child logger whose lines go through the service's JSON handler."""
    return logging.getLogger(f"{SERVICE}.{name}")


def set_level(level: str) -> None:
    logger.setLevel(level)
