"""Cut source files into chunks worth embedding: one per function, method or class.

Python is read with ``ast``; other languages with tree-sitter (the grammars of
``common.code.languages``). What is not a definition (a module's docstring and
imports, constants between functions) becomes its own chunk, so every line is
searchable. A file that does not parse, a language without a grammar, and a
definition too long for one chunk fall back to windows of about
:data:`WINDOW_CHARS` characters cut on line boundaries, each repeating about
:data:`OVERLAP_CHARS` characters (whole lines) of the one before.

Pure functions, no I/O.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from common.code.languages import language_for_path, parser_for

# Fallback windows: the embedders read ~256 tokens, about 600-800 characters of code.
WINDOW_CHARS = 512
OVERLAP_CHARS = 64
# A definition up to this size is one chunk; a longer one is cut into windows.
MAX_CHUNK_CHARS = 1500
# A class up to this size is one chunk; a longer one gives one chunk per method.
MAX_CLASS_CHARS = 1500

# Python's own line ends (``str.splitlines`` also splits on \f, \v, \x1c..., which
# would shift every line number after them).
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Chunk:
    """A piece of one file: lines ``start_line``..``end_line`` (1-based, inclusive)."""

    path: str
    language: str | None
    start_line: int
    end_line: int
    symbol: str | None
    text: str
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.text.encode()).hexdigest())


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its own line end (the last may have none)."""
    lines: list[str] = []
    start = 0
    for match in _LINE_END.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def chunk_file(path: str, text: str, *, language: str | None = None) -> list[Chunk]:
    """Chunks of one file, in file order.

    Parameters
    ----------
    path:
        The file's path in its project (also picks the language when none is given).
    text:
        Its content.
    language:
        Our language name (``common.code.languages``); default: from the path.

    Returns
    -------
    list[Chunk]
        Empty for a file of blank lines.
    """
    language = language or language_for_path(path)
    lines = split_lines(text)
    if not any(line.strip() for line in lines):
        return []
    spans: list[_Span] | None = None
    if language == "python":
        spans = _python_spans(text)
    elif language is not None:
        spans = _tree_sitter_spans(language, text)
    if spans is None:
        return list(_windows(path, language, lines, 1, len(lines), None, WINDOW_CHARS))
    return list(_emit(path, language, lines, spans, 1, len(lines), prefix=""))


# -- language-neutral spans ---------------------------------------------------------


@dataclass
class _Span:
    """A definition: lines ``start``..``end``; a class-like one may hold members."""

    start: int
    end: int
    name: str | None
    container: bool = False
    members: list[_Span] = field(default_factory=list)


def _text(lines: list[str], start: int, end: int) -> str:
    return "".join(lines[start - 1 : end])


def _emit(
    path: str,
    language: str | None,
    lines: list[str],
    spans: list[_Span],
    start: int,
    end: int,
    *,
    prefix: str,
    owner: str | None = None,
) -> Iterator[Chunk]:
    """Chunks for lines ``start``..``end``: one per span, the gaps between them too."""
    cursor = start
    for span in _non_overlapping(spans):
        if span.start > cursor:
            yield from _gap(path, language, lines, cursor, span.start - 1, owner)
        symbol = prefix + span.name if span.name else owner
        text = _text(lines, span.start, span.end)
        if span.container and span.members and len(text) > MAX_CLASS_CHARS:
            yield from _emit(
                path,
                language,
                lines,
                span.members,
                span.start,
                span.end,
                prefix=(symbol + ".") if symbol else prefix,
                owner=symbol,
            )
        else:
            yield from _windows(
                path, language, lines, span.start, span.end, symbol, MAX_CHUNK_CHARS
            )
        cursor = span.end + 1
    if cursor <= end:
        yield from _gap(path, language, lines, cursor, end, owner)


def _non_overlapping(spans: Iterable[_Span]) -> Iterator[_Span]:
    # Two definitions on one line (minified code) would give overlapping chunks:
    # the later one stays inside the earlier one's chunk.
    last_end = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start > last_end:
            last_end = span.end
            yield span


def _gap(
    path: str, language: str | None, lines: list[str], start: int, end: int, owner: str | None
) -> Iterator[Chunk]:
    # Leading and trailing blank lines belong to nobody.
    while start <= end and not lines[start - 1].strip():
        start += 1
    while end >= start and not lines[end - 1].strip():
        end -= 1
    if start <= end:
        yield from _windows(path, language, lines, start, end, owner, MAX_CHUNK_CHARS)


def _windows(
    path: str,
    language: str | None,
    lines: list[str],
    start: int,
    end: int,
    symbol: str | None,
    max_chars: int,
) -> Iterator[Chunk]:
    """Lines ``start``..``end`` as one chunk when they fit ``max_chars``, else windows.

    Windows hold whole lines, at most :data:`WINDOW_CHARS` characters each, and
    start again with the last lines of the previous one, about
    :data:`OVERLAP_CHARS` characters' worth. A single line longer than a window is
    cut into pieces, all on that line.
    """
    if len(_text(lines, start, end)) <= max_chars:
        text = _text(lines, start, end)
        if text.strip():
            yield Chunk(path, language, start, end, symbol, text)
        return
    i = start
    while i <= end:
        if len(lines[i - 1]) > WINDOW_CHARS:
            line = lines[i - 1]
            for offset in range(0, len(line), WINDOW_CHARS):
                piece = line[offset : offset + WINDOW_CHARS]
                if piece.strip():
                    yield Chunk(path, language, i, i, symbol, piece)
            i += 1
            continue
        j = i
        size = 0
        while j <= end and len(lines[j - 1]) <= WINDOW_CHARS:
            if j > i and size + len(lines[j - 1]) > WINDOW_CHARS:
                break
            size += len(lines[j - 1])
            j += 1
        text = _text(lines, i, j - 1)
        if text.strip():
            yield Chunk(path, language, i, j - 1, symbol, text)
        if j > end:
            break
        # Step back over whole lines until about OVERLAP_CHARS are repeated (never a
        # line longer than half a window, and always moving on).
        back_to, back = j, 0
        while (
            back_to - 1 > i
            and back < OVERLAP_CHARS
            and back + len(lines[back_to - 2]) <= WINDOW_CHARS // 2
        ):
            back += len(lines[back_to - 2])
            back_to -= 1
        i = back_to


# -- Python: ast ----------------------------------------------------------------------

_PY_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _python_spans(text: str) -> list[_Span] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes in the source
        return None
    lines = split_lines(text)
    return [_python_span(node, lines) for node in tree.body if isinstance(node, _PY_DEFS)]


def _python_span(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: list[str]
) -> _Span:
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    start = _with_leading_comments(lines, start, "#")
    span = _Span(start, node.end_lineno or node.lineno, node.name)
    if isinstance(node, ast.ClassDef):
        span.container = True
        span.members = [_python_span(n, lines) for n in node.body if isinstance(n, _PY_DEFS)]
    return span


def _with_leading_comments(lines: list[str], start: int, *markers: str) -> int:
    """``start`` moved up over the comment lines right above it (no blank line between)."""
    while start > 1 and lines[start - 2].lstrip().startswith(markers):
        start -= 1
    return start


# -- other languages: tree-sitter -----------------------------------------------------

# Node types that are a definition of their own: functions and methods...
_TS_FUNCTIONS: dict[str, frozenset[str]] = {
    "javascript": frozenset(
        {"function_declaration", "generator_function_declaration", "method_definition"}
    ),
    "typescript": frozenset(
        {
            "function_declaration",
            "generator_function_declaration",
            "method_definition",
            "function_signature",
            "interface_declaration",
            "type_alias_declaration",
            "enum_declaration",
        }
    ),
    "go": frozenset({"function_declaration", "method_declaration", "type_declaration"}),
    "rust": frozenset(
        {
            "function_item",
            "struct_item",
            "enum_item",
            "type_item",
            "macro_definition",
            "const_item",
            "static_item",
        }
    ),
    "java": frozenset(
        {"method_declaration", "constructor_declaration", "enum_declaration", "record_declaration"}
    ),
    "c": frozenset({"function_definition", "struct_specifier", "enum_specifier"}),
    "cpp": frozenset({"function_definition", "struct_specifier", "enum_specifier"}),
    "csharp": frozenset(
        {
            "method_declaration",
            "constructor_declaration",
            "property_declaration",
            "enum_declaration",
            "record_declaration",
        }
    ),
    "ruby": frozenset({"method", "singleton_method"}),
    "php": frozenset({"function_definition", "method_declaration"}),
    "bash": frozenset({"function_definition"}),
    "kotlin": frozenset({"function_declaration"}),
}
_TS_FUNCTIONS["tsx"] = _TS_FUNCTIONS["typescript"]

# ...and class-like ones, whose members become chunks when the whole is too long.
_TS_CONTAINERS: dict[str, frozenset[str]] = {
    "javascript": frozenset({"class_declaration"}),
    "typescript": frozenset(
        {"class_declaration", "abstract_class_declaration", "module", "internal_module"}
    ),
    "go": frozenset(),
    "rust": frozenset({"impl_item", "trait_item", "mod_item"}),
    "java": frozenset({"class_declaration", "interface_declaration"}),
    "c": frozenset(),
    "cpp": frozenset({"class_specifier", "namespace_definition"}),
    "csharp": frozenset(
        {
            "class_declaration",
            "interface_declaration",
            "struct_declaration",
            "namespace_declaration",
        }
    ),
    "ruby": frozenset({"class", "module"}),
    "php": frozenset({"class_declaration", "interface_declaration", "trait_declaration"}),
    "bash": frozenset(),
    "kotlin": frozenset({"class_declaration", "object_declaration"}),
}
_TS_CONTAINERS["tsx"] = _TS_CONTAINERS["typescript"]

# Wrappers whose span counts but whose name is inside: ``export function f``,
# ``template <...> class C``, ``@decorator class C``.
_TS_WRAPPERS = frozenset(
    {"export_statement", "template_declaration", "decorated_definition", "declaration_list"}
)
# ``const f = () => ...`` and friends: a variable whose value is a function.
_TS_VARIABLES = frozenset({"lexical_declaration", "variable_declaration"})
_TS_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_TS_COMMENTS = {
    "python": ("#",),
    "ruby": ("#",),
    "bash": ("#",),
    "php": ("//", "#", "/*", "*"),
}
_C_COMMENTS = ("//", "/*", "*", "///")

_NAME_TYPES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "property_identifier",
        "constant",
        "name",
        "simple_identifier",
        "qualified_identifier",
        "scoped_identifier",
        "destructor_name",
        "operator_name",
    }
)


def _tree_sitter_spans(language: str, text: str) -> list[_Span] | None:
    functions = _TS_FUNCTIONS.get(language)
    if functions is None:
        return None  # html, css, json, yaml...: windows
    parser = parser_for(language)
    if parser is None:
        return None
    source = text.encode("utf-8", "surrogatepass")
    try:
        tree = parser.parse(source)
    except Exception:  # a grammar that cannot read the file: windows, not a failure
        return None
    # Lines come from byte rows; tree-sitter counts \n only, as split_lines does for
    # files with \n or \r\n ends (a file of bare \r ends gets one line: windows cope).
    lines = split_lines(text)
    markers = _TS_COMMENTS.get(language, _C_COMMENTS)
    context = _TsContext(
        language, functions, _TS_CONTAINERS.get(language, frozenset()), source, lines, markers
    )
    return context.spans(tree.root_node)


@dataclass
class _TsContext:
    language: str
    functions: frozenset[str]
    containers: frozenset[str]
    source: bytes
    lines: list[str]
    markers: tuple[str, ...]

    def spans(self, parent: Any) -> list[_Span]:
        found: list[_Span] = []
        for child in parent.named_children:
            span = self.span(child)
            if span is not None:
                found.append(span)
            elif child.type in _TS_WRAPPERS or child.type in ("program", "source_file"):
                found.extend(self.spans(child))
        return found

    def span(self, node: Any) -> _Span | None:
        outer = node
        inner = node
        while inner.type in _TS_WRAPPERS:
            declared = [c for c in inner.named_children if self._interesting(c)]
            if not declared:
                return None
            inner = declared[0]
        if not self._interesting(inner):
            return None
        start = _with_leading_comments(self.lines, outer.start_point[0] + 1, *self.markers)
        end = outer.end_point[0] + 1
        # A node that ends at column 0 ends on the line before (its newline included).
        if outer.end_point[1] == 0 and end > outer.start_point[0] + 1:
            end -= 1
        span = _Span(start, end, self._name(inner))
        if inner.type in self.containers:
            span.container = True
            body = inner.child_by_field_name("body") or inner
            span.members = self.spans(body)
        return span

    def _interesting(self, node: Any) -> bool:
        if node.type in self.functions or node.type in self.containers:
            return True
        if node.type in _TS_VARIABLES:
            for declarator in node.named_children:
                value = declarator.child_by_field_name("value")
                if value is not None and value.type in _TS_FUNCTION_VALUES:
                    return True
        return False

    def _name(self, node: Any) -> str | None:
        if node.type in _TS_VARIABLES:
            for declarator in node.named_children:
                name = declarator.child_by_field_name("name")
                if name is not None:
                    return self._node_text(name)
            return None
        if node.type == "method_declaration" and self.language == "go":
            receiver = node.child_by_field_name("receiver")
            name = node.child_by_field_name("name")
            owner = _receiver_type(receiver, self) if receiver is not None else None
            method = self._node_text(name) if name is not None else None
            return f"{owner}.{method}" if owner and method else method
        if node.type == "type_declaration":
            for spec in node.named_children:
                name = spec.child_by_field_name("name")
                if name is not None:
                    return self._node_text(name)
        for field_name in ("name", "type", "declarator"):
            target = node.child_by_field_name(field_name)
            depth = 0
            while target is not None and target.type not in _NAME_TYPES and depth < 4:
                target = target.child_by_field_name("declarator") or target.child_by_field_name(
                    "name"
                )
                depth += 1
            if target is not None and target.type in _NAME_TYPES:
                return self._node_text(target)
        for child in node.named_children:
            if child.type in _NAME_TYPES:
                return self._node_text(child)
        return None

    def _node_text(self, node: Any) -> str:
        return self.source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _receiver_type(receiver: Any, context: _TsContext) -> str | None:
    # Go: ``func (s *Server) Start()`` -> "Server".
    for param in receiver.named_children:
        kind = param.child_by_field_name("type")
        while kind is not None and kind.type == "pointer_type":
            kind = kind.named_children[0] if kind.named_children else None
        if kind is not None:
            return context._node_text(kind)
    return None
