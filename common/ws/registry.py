"""Which route handler serves which path, for both doors.

Handlers are named ``"module:Class"`` and imported when the registry is built, so a
door that never builds it never imports a handler (a pty module, on Lambda).
The terminal and collaboration handlers are optional: until their modules exist
(or when one fails to import) the registry goes on without them and says so once.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import lru_cache

from common.logs import get_logger
from common.ws.base import RouteHandler

log = get_logger("ws.registry")

BUILTIN: tuple[str, ...] = (
    "common.ws.monitoring:MonitoringHandler",
    "common.ws.jobs:JobsHandler",
)
OPTIONAL: tuple[str, ...] = (
    "common.ws.terminal:TerminalHandler",
    "common.ws.collaboration:CollaborationHandler",
)

_PARAM = re.compile(r"\{(\w+)\}")


def compile_path(path: str) -> re.Pattern[str]:
    """``/ws/jobs/{sid}`` -> a regex with one named group per parameter (one segment each)."""
    pattern = ""
    last = 0
    for match in _PARAM.finditer(path):
        pattern += re.escape(path[last : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
        last = match.end()
    return re.compile("^" + pattern + re.escape(path[last:]) + "$")


@dataclass(frozen=True)
class Match:
    handler: RouteHandler
    sid: str | None


class Registry:
    """Route handlers by path pattern."""

    def __init__(self, handlers: list[RouteHandler]) -> None:
        self.handlers = list(handlers)
        self._compiled = [(compile_path(h.path), h) for h in self.handlers]
        routes = [h.route for h in self.handlers]
        if len(set(routes)) != len(routes):
            raise ValueError(f"two WebSocket handlers share a route: {routes}")

    def match(self, path: str) -> Match | None:
        """The handler for ``path`` and its ``sid`` (None for a route without one)."""
        for pattern, handler in self._compiled:
            found = pattern.match(path)
            if found:
                return Match(handler, found.groupdict().get("sid"))
        return None

    def by_route(self, route: str) -> RouteHandler | None:
        for handler in self.handlers:
            if handler.route == route:
                return handler
        return None

    def paths(self) -> list[str]:
        return [h.path for h in self.handlers]


def load_handler(spec: str) -> RouteHandler:
    module_name, _, class_name = spec.partition(":")
    module = importlib.import_module(module_name)
    handler: RouteHandler = getattr(module, class_name)()
    return handler


def build_registry(
    builtin: tuple[str, ...] = BUILTIN, optional: tuple[str, ...] = OPTIONAL
) -> Registry:
    """A registry of every handler that can be loaded here.

    An optional handler whose module does not exist is skipped quietly (it is not
    written yet); one that exists but fails to import is skipped with an error in
    the log, so the other routes still serve.
    """
    handlers = [load_handler(spec) for spec in builtin]
    for spec in optional:
        module_name = spec.partition(":")[0]
        try:
            handlers.append(load_handler(spec))
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # the module exists; something it imports does not
                log.error("WebSocket handler not loaded", extra={"handler": spec}, exc_info=True)
            else:
                log.info("WebSocket handler not available", extra={"handler": spec})
        except Exception:
            log.error("WebSocket handler not loaded", extra={"handler": spec}, exc_info=True)
    return Registry(handlers)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return build_registry()
