"""One streamed pass over a Figma file's JSON, node by node, never holding the file.

The bytes go through ijson's push parser (its C backend, yajl2_c, when the wheel
has it) in slices; its events drive a small state machine with an explicit stack,
so a tree of any depth is walked without recursion. Each node keeps only the
properties a token can come from (:data:`NODE_KEYS`); everything else (geometry,
transforms, per-character overrides, prototyping) is skipped as it streams past,
and a node is handed to the :class:`~common.figma.collect.Collector` when it ends
and then dropped. Memory is the open path from the root plus the counted values.

The body of ``POST /api/figma/analyze`` is read by the same machine: either the
file itself (``{"document": ..., "styles": ...}``), or ``{"file": <the file>}``,
or ``{"file_key", "token"}``, each with optional ``options``. Which one it is
shows at the first top-level key, so the caller knows before writing any byte
whether the body is a document to store (:attr:`FigmaWalker.form`).
"""

from __future__ import annotations

from typing import Any

from common.errors import InvalidInput, MalformedJson
from common.figma.collect import Collector, NodeFrame

# Node properties a token, the inventory or the model's prompt needs.
NODE_KEYS = frozenset(
    {
        "id",
        "name",
        "type",
        "visible",
        "fills",
        "strokes",
        "effects",
        "style",
        "styles",
        "cornerRadius",
        "rectangleCornerRadii",
        "layoutMode",
        "itemSpacing",
        "counterAxisSpacing",
        "paddingLeft",
        "paddingRight",
        "paddingTop",
        "paddingBottom",
        "componentPropertyDefinitions",
        "componentId",
        "absoluteBoundingBox",
        "characters",
    }
)
# Top-level keys of GET /v1/files/:key kept whole: the style, component and set maps
# are metadata (names, keys, descriptions), small next to the tree.
FILE_KEYS = frozenset(
    {
        "name",
        "lastModified",
        "version",
        "editorType",
        "schemaVersion",
        "role",
        "thumbnailUrl",
        "styles",
        "components",
        "componentSets",
    }
)
# Keys that say the body is the file itself (the rest of FILE_KEYS may be either).
FILE_MARKERS = frozenset({"document", "file"})
REQUEST_KEYS = frozenset({"file_key", "token", "options"})

# Frame kinds of the state machine.
_START, _ROOT, _NODE, _CHILDREN, _MAP, _LIST, _SKIP = range(7)


class _Frame:
    __slots__ = ("kind", "value", "key", "depth", "node", "outer")

    def __init__(
        self,
        kind: int,
        value: Any = None,
        node: NodeFrame | None = None,
        *,
        depth: int = 0,
        outer: bool = False,
    ) -> None:
        self.kind = kind
        self.value = value
        self.key: str = ""
        # _SKIP: open containers left to close; _NODE: depth in the tree.
        self.depth = depth
        self.node = node
        self.outer = outer


class FigmaWalker:
    """Feed JSON bytes in any slices; read what was found after :meth:`close`.

    Parameters
    ----------
    collector:
        Receives every node as it ends.
    request_body:
        True for the endpoint's body (a file, ``{"file": ...}`` or
        ``{"file_key", "token"}``); False for a file from Figma's API.

    Attributes
    ----------
    form:
        ``"file"`` once the body is known to carry the document, ``"key"`` when it
        names a file to fetch, None while that is not known yet.
    meta:
        The file's kept top-level values (:data:`FILE_KEYS`).
    request:
        The body's ``options``, ``file_key`` and ``token`` (request bodies only).
    """

    def __init__(self, collector: Collector, *, request_body: bool) -> None:
        import ijson

        self.backend: str = str(ijson.backend)
        self._events: list[tuple[str, Any]] = ijson.sendable_list()
        # Floats, not Decimals: sizes and colors are floats, and Decimals are slow.
        self._parser = ijson.basic_parse_coro(self._events, use_float=True)
        self._json_error: type[Exception] = ijson.JSONError
        self._collector = collector
        self._request_body = request_body
        self._stack: list[_Frame] = [_Frame(_START)]
        self.form: str | None = None if request_body else "file"
        self.meta: dict[str, Any] = {}
        self.request: dict[str, Any] = {}
        self.has_document = False
        self.top_keys: set[str] = set()
        self.bytes = 0
        self._done = False  # the top-level object has closed

    # -- input ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``, the next bytes of the JSON.

        Raises
        ------
        MalformedJson
            Not JSON, or not a JSON object.
        InvalidInput
            The body mixes a file with ``file_key``/``token``.
        """
        self.bytes += len(data)
        try:
            self._parser.send(data)
        except self._json_error as exc:
            raise MalformedJson(f"the body is not valid JSON: {_reason(exc)}") from None
        self._consume()

    def close(self) -> None:
        """The input is complete: parse what is left and check the body was whole.

        Raises
        ------
        MalformedJson
            The JSON ended early (or was empty).
        """
        try:
            self._parser.close()
        except self._json_error as exc:
            raise MalformedJson(f"the body is not valid JSON: {_reason(exc)}") from None
        self._consume()
        if len(self._stack) != 1 or self._stack[0].kind != _START or not self._done:
            raise MalformedJson("the body is not valid JSON: it ended early")

    # -- the machine ------------------------------------------------------------

    def _consume(self) -> None:
        events = self._events
        if not events:
            return
        stack = self._stack
        top = stack[-1]
        for event, value in events:
            kind = top.kind
            if kind == _SKIP:
                if event == "start_map" or event == "start_array":
                    top.depth += 1
                elif event == "end_map" or event == "end_array":
                    top.depth -= 1
                    if not top.depth:
                        stack.pop()
                        top = stack[-1]
                continue
            if event == "map_key":
                if kind == _ROOT and top.outer:
                    self._top_key(value)
                top.key = value
                continue
            if event == "end_map" or event == "end_array":
                stack.pop()
                if kind == _NODE:
                    self._collector.node(top.node, top.depth)  # type: ignore[arg-type]
                elif kind == _ROOT and top.outer:
                    self._done = True
                top = stack[-1]
                continue
            opens = event == "start_map" or event == "start_array"
            if kind == _MAP or kind == _LIST:
                container: Any = top.value
                if opens:
                    new: Any = {} if event == "start_map" else []
                    if kind == _MAP:
                        container[top.key] = new
                    else:
                        container.append(new)
                    top = _Frame(_MAP if event == "start_map" else _LIST, new)
                    stack.append(top)
                elif kind == _MAP:
                    container[top.key] = value
                else:
                    container.append(value)
                continue
            if kind == _NODE:
                key = top.key
                if key in NODE_KEYS:
                    props = top.node.props  # type: ignore[union-attr]
                    if opens:
                        new = {} if event == "start_map" else []
                        props[key] = new
                        top = _Frame(_MAP if event == "start_map" else _LIST, new)
                        stack.append(top)
                    else:
                        props[key] = value
                elif key == "children" and event == "start_array":
                    top = self._children_of(top)
                    stack.append(top)
                elif opens:
                    top = _Frame(_SKIP, depth=1)
                    stack.append(top)
                continue
            if kind == _CHILDREN:
                if event == "start_map":
                    parent: _Frame = top.value
                    node = top.node
                    child = NodeFrame(
                        parent=parent.node,
                        owner=node.owner,  # type: ignore[union-attr]
                        hidden=node.hidden,  # type: ignore[union-attr]
                        page=node.page,  # type: ignore[union-attr]
                    )
                    top = _Frame(_NODE, None, child, depth=parent.depth + 1)
                    stack.append(top)
                elif event == "start_array":
                    top = _Frame(_SKIP, depth=1)
                    stack.append(top)
                continue
            if kind == _ROOT:
                top = self._root_value(top, event, value)
                continue
            # _START: the whole body is one JSON object.
            if event != "start_map" or self._done:
                raise MalformedJson("the body must be one JSON object")
            top = _Frame(_ROOT, self.meta, outer=True)
            stack.append(top)
        events.clear()

    def _children_of(self, frame: _Frame) -> _Frame:
        """A node's ``children`` array opens: what its children inherit.

        Figma writes ``id``, ``name``, ``type`` and ``visible`` before ``children``,
        so the parent's type and visibility are known here.
        """
        node: NodeFrame = frame.node  # type: ignore[assignment]
        props = node.props
        kind = props.get("type")
        owner = node if kind == "COMPONENT" else node.owner
        page = node.page
        if kind == "CANVAS":
            name = props.get("name")
            page = name if isinstance(name, str) else page
        inherited = NodeFrame(
            parent=node.parent,
            owner=owner,
            hidden=node.hidden or props.get("visible") is False,
            page=page,
        )
        return _Frame(_CHILDREN, frame, inherited)

    def _root_value(self, top: _Frame, event: str, value: Any) -> _Frame:
        stack = self._stack
        key = top.key
        opens = event == "start_map" or event == "start_array"
        if key == "document" and event == "start_map":
            self.has_document = True
            new = _Frame(_NODE, None, NodeFrame(None, None, False, None), depth=0)
        elif key == "file" and top.outer and self._request_body and event == "start_map":
            new = _Frame(_ROOT, self.meta)
        elif key in FILE_KEYS or (top.outer and self._request_body and key in REQUEST_KEYS):
            target = self.request if top.outer and key in REQUEST_KEYS else self.meta
            if not opens:
                target[key] = value
                return top
            container: Any = {} if event == "start_map" else []
            target[key] = container
            new = _Frame(_MAP if event == "start_map" else _LIST, container)
        elif opens:
            new = _Frame(_SKIP, depth=1)
        else:
            return top
        stack.append(new)
        return new

    def _top_key(self, key: str) -> None:
        """Decide (and check) the body's form from its top-level keys."""
        seen = self.top_keys
        seen.add(key)
        if not self._request_body:
            return
        if key in FILE_MARKERS:
            if self.form == "key":
                raise InvalidInput(_MIXED)
            if FILE_MARKERS <= seen:
                raise InvalidInput("give the file once: either the file itself or `file`")
            self.form = "file"
        elif key in ("file_key", "token"):
            if self.form == "file":
                # Raised before the slice holding the key is stored: a token given
                # next to a file is refused and never written anywhere.
                raise InvalidInput(_MIXED)
            self.form = "key"


_MIXED = "give either the file (`document` or `file`) or `file_key` and `token`, not both"


def _reason(exc: Exception) -> str:
    # yajl's messages quote the input around the error; keep only the first line,
    # and never more than a short excerpt (the body may carry anything).
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
