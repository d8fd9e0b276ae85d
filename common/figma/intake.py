"""Bytes in, once: parsed for tokens and written to the store from the same slices.

Each slice is parsed before it is written. The walker knows from the body's first
top-level key whether the body is a document (then every slice goes to the sink,
including the few held back until then) or a ``{file_key, token}`` request (then
nothing is written, and the file is fetched from Figma into a second intake). A
``token`` next to a file is refused while parsing the slice that holds it, so
that slice, and the token, never reach the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import AppError, InvalidInput, MalformedJson
from common.figma.collect import Collected, Collector
from common.figma.store import DocumentSink
from common.figma.walk import FigmaWalker

SLICE_BYTES = 64 * 1024
# Top-level keys seen before the one that says what the body is: `options` first,
# say. More than this without knowing is not a body of ours.
MAX_UNDECIDED_BYTES = 1024 * 1024

SinkFactory = Callable[[], DocumentSink]


@dataclass
class Intake:
    """One body, or one file from Figma, on its way through the walker to a sink.

    Parameters
    ----------
    open_sink:
        Called once, when the first slice of a document is to be written.
    request_body:
        The endpoint's body (which may be a ``{file_key, token}`` request), or a
        file straight from Figma.
    """

    open_sink: SinkFactory
    request_body: bool = True
    collector: Collector = field(default_factory=Collector)
    walker: FigmaWalker = field(init=False)
    gridfs_id: str | None = None
    parse_s: float = 0.0
    _sink: DocumentSink | None = None
    _held: list[bytes] = field(default_factory=list)
    _held_bytes: int = 0
    _closed: bool = False

    def __post_init__(self) -> None:
        self.walker = FigmaWalker(self.collector, request_body=self.request_body)

    @property
    def found(self) -> Collected:
        return self.collector.found

    @property
    def size(self) -> int:
        return self.walker.bytes

    def feed(self, data: bytes) -> None:
        """The next bytes: parsed slice by slice, each written once it parsed.

        Raises
        ------
        MalformedJson, InvalidInput
            The body is not JSON, or not a body of ours.
        StoreUnavailable
            The sink failed.
        """
        view = memoryview(data)
        for start in range(0, len(view), SLICE_BYTES):
            piece = bytes(view[start : start + SLICE_BYTES])
            started = time.perf_counter()
            try:
                self.walker.feed(piece)
            finally:
                self.parse_s += time.perf_counter() - started
            self._keep(piece)

    def _keep(self, piece: bytes) -> None:
        form = self.walker.form
        if form == "key":
            self._held.clear()
            self._held_bytes = 0
            return
        if form is None:
            self._held.append(piece)
            self._held_bytes += len(piece)
            if self._held_bytes > MAX_UNDECIDED_BYTES:
                raise InvalidInput(
                    "the body's first top-level keys do not say what it is: give the file"
                    " (`document`), `file`, or `file_key` and `token` first"
                )
            return
        if self._sink is None:
            self._sink = self.open_sink()
            for held in self._held:
                self._sink.write(held)
            self._held.clear()
            self._held_bytes = 0
        self._sink.write(piece)

    def finish(self) -> None:
        """The input is complete: check it and close the sink (its id in :attr:`gridfs_id`).

        Raises
        ------
        MalformedJson
            The JSON ended early.
        InvalidInput
            No document and no ``file_key``.
        """
        started = time.perf_counter()
        self.walker.close()
        self.parse_s += time.perf_counter() - started
        walker = self.walker
        if walker.form == "key":
            return
        if not walker.has_document:
            what = "the file" if self.request_body else "Figma's answer"
            raise InvalidInput(
                f"{what} has no `document`: send the JSON of GET /v1/files/:key, or"
                " `file_key` and `token`"
            )
        if self._sink is None:
            self._sink = self.open_sink()
            for held in self._held:
                self._sink.write(held)
            self._held.clear()
        self.gridfs_id = self._sink.close()
        self._closed = True

    def abort(self) -> None:
        """Drop what was written (the request failed)."""
        if self._sink is not None and not self._closed:
            self._sink.abort()
        self._sink = None
        self._held.clear()

    # -- what the body said -----------------------------------------------------

    @property
    def form(self) -> str | None:
        return self.walker.form

    @property
    def options(self) -> Any:
        return self.walker.request.get("options")

    def take_key_and_token(self) -> tuple[str, str]:
        """The body's ``file_key`` and ``token``; the token is removed from the intake.

        Raises
        ------
        InvalidInput
            Either is missing or not a string.
        """
        request = self.walker.request
        file_key = request.get("file_key")
        token = request.pop("token", None)
        if not isinstance(file_key, str) or not file_key:
            raise InvalidInput(
                "`file_key` is required with `token`",
                details={"fields": [{"path": "body.file_key", "type": "missing"}]},
            )
        if not isinstance(token, str) or not token.strip():
            raise InvalidInput(
                "`token` (a Figma access token) is required with `file_key`",
                details={"fields": [{"path": "body.token", "type": "missing"}]},
            )
        return file_key, token.strip()


def as_figma_error(error: AppError) -> AppError:
    """A parse error in Figma's own answer is Figma's failure, not the caller's body."""
    from common.figma.errors import FigmaUnavailable

    if isinstance(error, MalformedJson | InvalidInput):
        return FigmaUnavailable(f"Figma's answer was not a Figma file: {error.message}")
    return error
