"""Remove named test cases from a test file, keeping the rest runnable."""

from __future__ import annotations

import ast
import re

from common.code.languages import parser_for

_PARAMS = re.compile(r"\[.*\]$")


def case_function(name: str) -> tuple[str | None, str]:
    """(class, function) of a pytest node id such as ``t.py::TestX::test_y[1]``."""
    parts = [p for p in name.split("::")[1:] if p] or [name]
    function = _PARAMS.sub("", parts[-1])
    return (parts[-2] if len(parts) >= 2 else None), function


def drop_python_tests(source: str, case_names: list[str]) -> str:
    """``source`` without the test functions behind ``case_names`` (pytest node ids).

    A parametrized case drops its whole function; a class left without tests goes too.
    """
    wanted = {case_function(n) for n in case_names}
    tree = ast.parse(source)
    spans: list[tuple[int, int]] = []

    def span(node: ast.stmt) -> tuple[int, int]:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        return first, node.end_lineno or node.lineno

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (None, node.name) in wanted:
            spans.append(span(node))
        elif isinstance(node, ast.ClassDef):
            methods = [
                m
                for m in node.body
                if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
                and (node.name, m.name) in wanted
            ]
            tests_left = [
                m
                for m in node.body
                if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
                and m.name.startswith("test")
                and m not in methods
            ]
            if methods and not tests_left:
                spans.append(span(node))
            else:
                spans.extend(span(m) for m in methods)
    lines = source.splitlines(keepends=True)
    for first, last in sorted(spans, reverse=True):
        del lines[first - 1 : last]
    return "".join(lines)


_JS_TEST_CALLEES = {"test", "it"}


def drop_js_tests(source: str, case_names: list[str], language: str = "javascript") -> str:
    """``source`` without the ``test(...)``/``it(...)`` calls named in ``case_names``.

    node:test reports nested cases by their own name; a name matches a call whose
    first argument is that string literal.
    """
    parser = parser_for(language)
    if parser is None:
        return source
    wanted = {n.rsplit(" > ", 1)[-1].strip() for n in case_names}
    data = source.encode()
    tree = parser.parse(data)
    cuts: list[tuple[int, int]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "expression_statement" and node.named_child_count:
            call = node.named_children[0]
            if call.type == "call_expression" and _js_test_name(call, data) in wanted:
                cuts.append((node.start_byte, node.end_byte))
                continue
        stack.extend(node.named_children)
    for start, end in sorted(cuts, reverse=True):
        data = data[:start] + data[end:]
    return data.decode()


def _js_test_name(call: object, data: bytes) -> str | None:
    function = call.child_by_field_name("function")  # type: ignore[attr-defined]
    arguments = call.child_by_field_name("arguments")  # type: ignore[attr-defined]
    if function is None or arguments is None or not arguments.named_children:
        return None
    callee = data[function.start_byte : function.end_byte].decode()
    if callee.split(".")[0] not in _JS_TEST_CALLEES:
        return None
    first = arguments.named_children[0]
    if first.type not in ("string", "template_string"):
        return None
    return data[first.start_byte + 1 : first.end_byte - 1].decode()
