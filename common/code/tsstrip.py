"""TypeScript to runnable JavaScript by erasing the types (tree-sitter), no compiler.

The same idea as Node's ``--experimental-strip-types`` and ts-blank-space: type
syntax is replaced by spaces, so lines and columns stay where they were and a
stack trace points into the TypeScript. Enums (the one common construct with run
time meaning) become frozen objects. Constructor parameter properties
(``constructor(private x)``) keep only their name: that member is not assigned,
and a test that needs it fails visibly. Nothing is type-checked.
"""

from __future__ import annotations

import json
from typing import Any

from common.code.languages import parser_for

# Nodes erased whole: pure type syntax, or declarations with no run-time effect.
_ERASE = {
    "type_annotation",
    "type_parameters",
    "type_arguments",
    "interface_declaration",
    "type_alias_declaration",
    "implements_clause",
    "accessibility_modifier",
    "override_modifier",
    "abstract_method_signature",
    "function_signature",
    "ambient_declaration",
    "index_signature",
}
# Keywords erased where they modify a member or parameter.
_ERASE_TOKENS = {"readonly", "abstract", "declare", "?", "!"}
_ERASE_TOKEN_PARENTS = {
    "public_field_definition",
    "optional_parameter",
    "abstract_class_declaration",
    "class_declaration",
    "method_definition",
}


class StripError(ValueError):
    """The TypeScript does not parse."""


def strip_types(source: str, *, tsx: bool = False) -> str:
    """``source`` (TypeScript) as JavaScript with the same layout.

    Raises
    ------
    StripError
        The source has a syntax error (with its line).
    """
    parser = parser_for("tsx" if tsx else "typescript")
    if parser is None:  # pragma: no cover - the grammar is a dependency
        raise StripError("no TypeScript grammar installed")
    data = bytearray(source.encode())
    tree = parser.parse(bytes(data))
    if tree.root_node.has_error:
        raise StripError(f"line {_first_error_line(tree.root_node)}: the TypeScript does not parse")
    edits: list[tuple[int, int, bytes]] = []
    _collect(tree.root_node, bytes(data), edits)
    for start, end, text in sorted(edits, reverse=True):
        data[start:end] = text
    return data.decode()


def _blank(data: bytes, start: int, end: int) -> bytes:
    # Keep newlines: the line numbers of everything after stay right.
    return bytes(b if b in (10, 13) else 32 for b in data[start:end])


def _collect(node: Any, data: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    kind = node.type
    if kind in _ERASE:
        edits.append((node.start_byte, node.end_byte, _blank(data, node.start_byte, node.end_byte)))
        return
    if kind == "import_statement" and any(c.type == "type" for c in node.children):
        edits.append((node.start_byte, node.end_byte, _blank(data, node.start_byte, node.end_byte)))
        return
    if kind == "export_statement" and any(
        c.type in ("interface_declaration", "type_alias_declaration", "type") for c in node.children
    ):
        edits.append((node.start_byte, node.end_byte, _blank(data, node.start_byte, node.end_byte)))
        return
    if kind in ("as_expression", "satisfies_expression"):
        keyword = next(c for c in node.children if c.type in ("as", "satisfies"))
        edits.append(
            (keyword.start_byte, node.end_byte, _blank(data, keyword.start_byte, node.end_byte))
        )
        _collect(node.children[0], data, edits)
        return
    if kind == "non_null_expression":
        bang = node.children[-1]
        edits.append((bang.start_byte, bang.end_byte, b" "))
        _collect(node.children[0], data, edits)
        return
    if kind == "enum_declaration":
        edits.append((node.start_byte, node.end_byte, _enum_object(node, data)))
        return
    for child in node.children:
        if child.type in _ERASE_TOKENS and kind in _ERASE_TOKEN_PARENTS | {"required_parameter"}:
            edits.append(
                (child.start_byte, child.end_byte, _blank(data, child.start_byte, child.end_byte))
            )
        else:
            _collect(child, data, edits)


def _enum_object(node: Any, data: bytes) -> bytes:
    """``enum E { A, B = 5 }`` → ``const E = Object.freeze({"A": 0, "B": 5});`` on as
    many lines as the enum had."""
    name = node.child_by_field_name("name")
    body = node.child_by_field_name("body")
    members: dict[str, Any] = {}
    next_value: Any = 0
    for member in body.named_children if body is not None else []:
        if member.type == "enum_assignment":
            key = data[member.named_children[0].start_byte : member.named_children[0].end_byte]
            raw = data[member.named_children[1].start_byte : member.named_children[1].end_byte]
            value: Any = json.loads(raw) if raw[:1] != b"'" else raw[1:-1].decode()
        elif member.type == "property_identifier":
            key, value = data[member.start_byte : member.end_byte], next_value
        else:
            continue
        members[key.decode()] = value
        next_value = value + 1 if isinstance(value, int | float) else None
    enum_name = data[name.start_byte : name.end_byte].decode() if name is not None else "Enum"
    text = f"const {enum_name} = Object.freeze({json.dumps(members)});"
    newlines = data[node.start_byte : node.end_byte].count(b"\n")
    return (text + "\n" * newlines).encode()


def _first_error_line(node: Any) -> int:
    stack = [node]
    while stack:
        current = stack.pop(0)
        if current.type == "ERROR" or current.is_missing:
            return int(current.start_point[0]) + 1
        stack.extend(current.children)
    return int(node.start_point[0]) + 1
