"""Languages we know: names, file extensions, and a tree-sitter grammar for each.

Grammars come from the official one-language packages (``tree-sitter-javascript``
and so on), imported on first use; Python is parsed with ``ast`` instead, which
also gives the line and message of the first error.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Language:
    name: str
    extensions: tuple[str, ...]
    # (module, function) giving the tree-sitter language pointer; None: no grammar.
    grammar: tuple[str, str] | None
    fence_names: tuple[str, ...] = ()


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in [
        Language("python", (".py", ".pyi"), None, ("py", "python3")),
        Language(
            "javascript",
            (".js", ".mjs", ".cjs", ".jsx"),
            ("tree_sitter_javascript", "language"),
            ("js", "jsx", "node"),
        ),
        Language(
            "typescript",
            (".ts", ".mts", ".cts"),
            ("tree_sitter_typescript", "language_typescript"),
            ("ts",),
        ),
        Language("tsx", (".tsx",), ("tree_sitter_typescript", "language_tsx")),
        Language("go", (".go",), ("tree_sitter_go", "language"), ("golang",)),
        Language("rust", (".rs",), ("tree_sitter_rust", "language"), ("rs",)),
        Language("java", (".java",), ("tree_sitter_java", "language")),
        Language("c", (".c", ".h"), ("tree_sitter_c", "language")),
        Language(
            "cpp", (".cpp", ".cc", ".cxx", ".hpp", ".hh"), ("tree_sitter_cpp", "language"), ("c++",)
        ),
        Language("csharp", (".cs",), ("tree_sitter_c_sharp", "language"), ("cs", "c#")),
        Language("ruby", (".rb",), ("tree_sitter_ruby", "language"), ("rb",)),
        Language("php", (".php",), ("tree_sitter_php", "language_php")),
        Language(
            "bash", (".sh", ".bash"), ("tree_sitter_bash", "language"), ("sh", "shell", "zsh")
        ),
        Language("kotlin", (".kt", ".kts"), ("tree_sitter_kotlin", "language"), ("kt",)),
        Language("html", (".html", ".htm"), ("tree_sitter_html", "language")),
        Language("css", (".css",), ("tree_sitter_css", "language")),
        Language("json", (".json",), ("tree_sitter_json", "language")),
        Language("yaml", (".yaml", ".yml"), ("tree_sitter_yaml", "language"), ("yml",)),
        Language("dockerfile", (), None, ("docker",)),
    ]
}

_BY_EXTENSION = {ext: lang.name for lang in LANGUAGES.values() for ext in lang.extensions}
_BY_ALIAS = {
    alias: lang.name for lang in LANGUAGES.values() for alias in (lang.name, *lang.fence_names)
}


def normalize_language(name: str | None) -> str | None:
    """Our name for ``name`` (a fence tag, an alias), or None when unknown."""
    if not name:
        return None
    return _BY_ALIAS.get(name.strip().lower())


def language_for_path(path: str) -> str | None:
    pure = PurePosixPath(path)
    if pure.name.lower() in ("dockerfile", "containerfile") or pure.suffix == ".dockerfile":
        return "dockerfile"
    return _BY_EXTENSION.get(pure.suffix.lower())


# Cheap signals, strongest first; used only when neither the caller nor a path says.
_SIGNALS: list[tuple[str, re.Pattern[str]]] = [
    ("php", re.compile(r"^\s*<\?php")),
    ("bash", re.compile(r"^#!.*\b(ba|z)?sh\b")),
    # Ruby before Python: both say "def", only Ruby closes blocks with a bare "end".
    ("ruby", re.compile(r"^\s*end\s*$|^\s*require\s+['\"]|^\s*puts\s", re.M)),
    (
        "python",
        re.compile(
            r"^#!.*python|^\s*(async\s+)?def\s+\w+\s*\(|^\s*class\s+\w+.*:\s*$"
            r"|^\s*(from\s+[\w.]+\s+)?import\s+\w+|^\s*print\(",
            re.M,
        ),
    ),
    ("dockerfile", re.compile(r"^\s*FROM\s+\S+(\s+AS\s+\w+)?\s*$", re.M | re.I)),
    ("go", re.compile(r"^\s*package\s+\w+\s*$|^\s*func\s+(\(\w+ \*?\w+\)\s*)?\w+\(", re.M)),
    ("rust", re.compile(r"^\s*(pub\s+)?fn\s+\w+|^\s*use\s+\w+::|let\s+mut\s+", re.M)),
    (
        "typescript",
        re.compile(r":\s*(string|number|boolean|void)\b|^\s*(interface|type)\s+\w+", re.M),
    ),
    (
        "java",
        re.compile(
            r"^\s*(public|private|protected)\s+(static\s+)?(class|void|[\w<>]+\s+\w+\()", re.M
        ),
    ),
    ("csharp", re.compile(r"^\s*using\s+System|^\s*namespace\s+[\w.]+", re.M)),
    ("cpp", re.compile(r"#include\s*<(iostream|vector|string)>|std::", re.M)),
    ("c", re.compile(r"#include\s*[<\"]\w+\.h[>\"]", re.M)),
    (
        "javascript",
        re.compile(
            r"\b(const|let|var)\s+\w+\s*=|function\s*\w*\s*\(|=>|require\(|console\.log",
            re.M,
        ),
    ),
]


def detect_language(code: str, *, path: str | None = None, hint: str | None = None) -> str | None:
    """Best guess of ``code``'s language: the hint, then the path, then the content."""
    named = normalize_language(hint)
    if named:
        return named
    if path:
        by_path = language_for_path(path)
        if by_path:
            return by_path
    for name, pattern in _SIGNALS:
        if pattern.search(code):
            return name
    return None


@cache
def parser_for(language: str) -> Any | None:
    """A tree-sitter ``Parser`` for ``language``, or None when we have no grammar."""
    lang = LANGUAGES.get(language)
    if lang is None or lang.grammar is None:
        return None
    try:
        from tree_sitter import Language as TSLanguage
        from tree_sitter import Parser

        module_name, function = lang.grammar
        pointer = getattr(importlib.import_module(module_name), function)()
    except (ImportError, AttributeError):
        return None
    return Parser(TSLanguage(pointer))
