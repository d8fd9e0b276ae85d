"""The one rule for text that cannot be stored (common/text.py)."""

from __future__ import annotations

from common.text import first_unstorable, shown, unstorable


def test_nul_and_lone_surrogates_are_refused_and_pairs_are_not() -> None:
    assert unstorable("a\x00b") == "a NUL character"
    assert unstorable("a\ud800") == "a lone UTF-16 surrogate"
    assert unstorable("\udfff") == "a lone UTF-16 surrogate"
    assert unstorable("snow \u2603, emoji \U0001f600, tab\t") is None


def test_the_first_bad_string_is_found_by_its_field_path_keys_included() -> None:
    assert first_unstorable({"a": [1, {"b": "ok"}, {"c": "x\x00"}]}) == (
        "body.a.2.c",
        "a NUL character",
    )
    found = first_unstorable({"files": {"src/\x00evil.py": "print()"}})
    assert found == ("body.files.src/\\x00evil.py.[key]", "its name holds a NUL character")
    assert first_unstorable({"deep": [[[[["fine"]]]]], "n": 1, "none": None}) is None


def test_a_deep_value_does_not_exhaust_the_stack() -> None:
    value: object = "\ud800"
    for _ in range(50_000):
        value = [value]
    found = first_unstorable(value)
    assert found is not None and found[1] == "a lone UTF-16 surrogate"


def test_shown_escapes_control_characters_and_cuts() -> None:
    assert shown("a\x00b\x1bc\ud800") == "a\\x00b\\x1bc\\ud800"
    assert shown("x" * 500, limit=10) == "x" * 10 + "..."


def test_a_files_content_may_hold_a_nul_a_binary_file_but_not_a_lone_surrogate() -> None:
    png = "\x89PNG\r\n\x1a\n\x00\x00"
    assert first_unstorable({"files": {"logo.png": png}}) is None
    assert first_unstorable({"files": {"a.py": "x\ud800"}}) == (
        "body.files.a.py",
        "a lone UTF-16 surrogate",
    )
    # Anywhere else a NUL is refused, a "files" that is not a mapping included
    assert first_unstorable({"files": ["x\x00"]}) == ("body.files.0", "a NUL character")
