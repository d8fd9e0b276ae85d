"""Chunking code by syntax: Python with ast, others with tree-sitter, windows otherwise."""

from __future__ import annotations

import hashlib
import textwrap

import pytest

from common.memory.chunking import (
    MAX_CLASS_CHARS,
    OVERLAP_CHARS,
    WINDOW_CHARS,
    Chunk,
    chunk_file,
    split_lines,
)

PYTHON = textwrap.dedent(
    '''\
    """A module that greets people."""

    import os
    from pathlib import Path

    GREETING = "hello"


    # Says hello to one person.
    @decorated
    def greet(name: str) -> str:
        return f"{GREETING} {name}"


    class Small:
        """Fits in one chunk."""

        def one(self) -> int:
            return 1


    async def fetch() -> None:
        await something()


    if __name__ == "__main__":
        greet(os.environ["USER"])
    '''
)


def _lines(text: str, chunk: Chunk) -> str:
    return "".join(split_lines(text)[chunk.start_line - 1 : chunk.end_line])


def _by_symbol(chunks: list[Chunk]) -> dict[str | None, list[Chunk]]:
    found: dict[str | None, list[Chunk]] = {}
    for chunk in chunks:
        found.setdefault(chunk.symbol, []).append(chunk)
    return found


def _non_blank_lines_covered(text: str, chunks: list[Chunk]) -> set[int]:
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    return {n for n, line in enumerate(split_lines(text), 1) if line.strip()} - covered


def test_python_gives_a_header_each_definition_and_the_code_between() -> None:
    # Given a module with a docstring, imports, a constant, functions and a class
    # When it is chunked
    chunks = chunk_file("pkg/greet.py", PYTHON)
    # Then there is one chunk per top-level definition, plus the code around them
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [
        (None, 1, 6),
        ("greet", 9, 12),
        ("Small", 15, 19),
        ("fetch", 22, 23),
        (None, 26, 27),
    ]
    header = chunks[0]
    assert header.text.startswith('"""A module that greets people."""')
    assert "from pathlib import Path" in header.text
    # And the comment and decorator above a function belong to it
    assert chunks[1].text.startswith("# Says hello to one person.\n@decorated\ndef greet")
    for chunk in chunks:
        assert chunk.path == "pkg/greet.py"
        assert chunk.language == "python"
        assert chunk.text == _lines(PYTHON, chunk)
        assert chunk.sha256 == hashlib.sha256(chunk.text.encode()).hexdigest()
    assert _non_blank_lines_covered(PYTHON, chunks) == set()


def test_a_long_class_gives_one_chunk_per_method() -> None:
    # Given a class longer than one chunk
    body = "".join(
        f"    def method_{i}(self) -> int:\n"
        f'        """Method number {i}, with a docstring to make it longer."""\n'
        f"        return {i}\n\n"
        for i in range(30)
    )
    source = f'class Big:\n    """A big class."""\n\n    LIMIT = 3\n\n{body}'
    assert len(source) > MAX_CLASS_CHARS
    # When it is chunked
    chunks = chunk_file("big.py", source)
    # Then the class header and each method are chunks, methods named Class.method
    symbols = [c.symbol for c in chunks]
    assert symbols[0] == "Big"
    assert chunks[0].text.startswith("class Big:")
    assert "LIMIT = 3" in chunks[0].text
    assert symbols[1:] == [f"Big.method_{i}" for i in range(30)]
    method = chunks[1]
    assert method.text.lstrip().startswith("def method_0(self)")
    assert method.text == _lines(source, method)
    assert _non_blank_lines_covered(source, chunks) == set()


def test_a_long_function_is_cut_into_overlapping_windows_that_keep_its_name() -> None:
    # Given a function of 200 lines
    source = "def long_one():\n" + "".join(f"    value_{i} = compute({i})\n" for i in range(200))
    # When it is chunked
    chunks = chunk_file("long.py", source)
    # Then every window is named after it, fits a window, and windows overlap a little
    assert len(chunks) > 1
    assert {c.symbol for c in chunks} == {"long_one"}
    assert all(len(c.text) <= WINDOW_CHARS for c in chunks)
    longest_line = max(len(line) for line in split_lines(source))
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start_line < after.start_line <= before.end_line
        overlap = "".join(split_lines(source)[after.start_line - 1 : before.end_line])
        assert OVERLAP_CHARS <= len(overlap) < OVERLAP_CHARS + longest_line
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 201
    assert _non_blank_lines_covered(source, chunks) == set()


def test_python_that_does_not_parse_falls_back_to_windows() -> None:
    source = "def broken(:\n    pass\n" + "x = 1\n" * 200
    chunks = chunk_file("broken.py", source)
    assert len(chunks) > 1
    assert {c.symbol for c in chunks} == {None}
    assert _non_blank_lines_covered(source, chunks) == set()


def test_windows_hold_whole_lines_of_about_512_characters_with_a_small_overlap() -> None:
    # Given a text file with no grammar
    source = "".join(f"line {i}: " + "word " * (i % 13) + "\n" for i in range(300))
    # When it is chunked
    chunks = chunk_file("notes/readme.txt", source)
    # Then windows are whole lines, at most a window long, each overlapping the last
    assert {c.language for c in chunks} == {None}
    for chunk in chunks:
        assert chunk.text == _lines(source, chunk)
        assert len(chunk.text) <= WINDOW_CHARS
        assert len(chunk.text) > WINDOW_CHARS // 2 or chunk is chunks[-1]
    longest_line = max(len(line) for line in split_lines(source))
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start_line < after.start_line <= before.end_line  # overlapping
        overlap = "".join(split_lines(source)[after.start_line - 1 : before.end_line])
        assert OVERLAP_CHARS <= len(overlap) < OVERLAP_CHARS + longest_line
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 300


def test_a_line_longer_than_a_window_is_cut_into_pieces_on_that_line() -> None:
    source = "short\n" + "x" * (WINDOW_CHARS * 2 + 10) + "\nshort again\n"
    chunks = chunk_file("min.txt", source)
    pieces = [c for c in chunks if c.start_line == c.end_line == 2]
    assert [len(p.text) for p in pieces] == [WINDOW_CHARS, WINDOW_CHARS, 11]


@pytest.mark.parametrize("source", ["", "\n\n   \n", "\t\n"])
def test_a_blank_file_gives_no_chunks(source: str) -> None:
    assert chunk_file("empty.py", source) == []


def test_crlf_and_form_feeds_keep_python_line_numbers() -> None:
    source = "import os\r\n\r\n\x0c\r\ndef a():\r\n    return 1\r\n\r\ndef b():\r\n    return 2\r\n"
    chunks = chunk_file("crlf.py", source)
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [
        (None, 1, 1),
        ("a", 4, 5),
        ("b", 7, 8),
    ]


def test_same_text_same_hash_other_text_other_hash() -> None:
    first = chunk_file("a.py", "def f():\n    return 1\n")[0]
    same = chunk_file("b.py", "def f():\n    return 1\n")[0]
    other = chunk_file("a.py", "def f():\n    return 2\n")[0]
    assert first.sha256 == same.sha256 != other.sha256


JAVASCRIPT = textwrap.dedent(
    """\
    import { readFile } from "fs";

    // Adds two numbers.
    export function add(a, b) {
      return a + b;
    }

    const double = (x) => x * 2;

    class Counter {
      constructor() {
        this.count = 0;
      }
      increment() {
        this.count += 1;
      }
    }
    """
)


def test_javascript_is_chunked_by_tree_sitter() -> None:
    chunks = chunk_file("src/math.js", JAVASCRIPT)
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [
        (None, 1, 1),
        ("add", 3, 6),
        ("double", 8, 8),
        ("Counter", 10, 17),
    ]
    assert chunks[1].text.startswith("// Adds two numbers.\nexport function add")
    assert {c.language for c in chunks} == {"javascript"}


def test_a_long_javascript_class_gives_class_dot_method_chunks() -> None:
    methods = "".join(
        f"  method{i}(value) {{\n    // step {i} of a long computation\n"
        f"    return value * {i} + this.offset;\n  }}\n"
        for i in range(25)
    )
    source = f"class Engine {{\n  constructor() {{ this.offset = 1; }}\n{methods}}}\n"
    chunks = chunk_file("engine.ts", source)
    symbols = [c.symbol for c in chunks]
    assert symbols[0] == "Engine"
    assert "Engine.constructor" in symbols
    assert [s for s in symbols if s and s.startswith("Engine.method")] == [
        f"Engine.method{i}" for i in range(25)
    ]
    assert {c.language for c in chunks} == {"typescript"}
    assert _non_blank_lines_covered(source, chunks) == set()


def test_go_methods_are_named_after_their_receiver() -> None:
    source = textwrap.dedent(
        """\
        package server

        type Server struct {
            port int
        }

        // Start listens on the port.
        func (s *Server) Start() error {
            return nil
        }

        func New(port int) *Server {
            return &Server{port: port}
        }
        """
    )
    chunks = chunk_file("server.go", source)
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [
        (None, 1, 1),
        ("Server", 3, 5),
        ("Server.Start", 7, 10),
        ("New", 12, 14),
    ]


def test_rust_impl_blocks_and_functions() -> None:
    source = textwrap.dedent(
        """\
        use std::fmt;

        pub struct Point { x: i32, y: i32 }

        impl Point {
            pub fn norm(&self) -> i32 { self.x.abs() + self.y.abs() }
        }

        fn main() {
            println!("hi");
        }
        """
    )
    chunks = chunk_file("src/main.rs", source)
    assert [(c.symbol, c.start_line) for c in chunks] == [
        (None, 1),
        ("Point", 3),
        ("Point", 5),
        ("main", 9),
    ]


def test_a_language_without_definitions_uses_windows() -> None:
    source = "".join(f"key_{i}: value {i}\n" for i in range(100))
    chunks = chunk_file("config/app.yaml", source)
    assert {c.symbol for c in chunks} == {None}
    assert {c.language for c in chunks} == {"yaml"}
    assert _non_blank_lines_covered(source, chunks) == set()
