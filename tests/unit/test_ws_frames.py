"""Frames over API Gateway's 128 KB limit are split into parts a client can join."""

from __future__ import annotations

import json

import pytest

from common.ws.frames import MAX_FRAME_BYTES, Reassembler, dumps, split_frame


def test_a_frame_under_the_limit_goes_as_is() -> None:
    text = dumps({"type": "sample", "value": 1})
    assert split_frame(text) == [text]
    assert Reassembler().feed(text) == text


def test_a_300_kb_message_becomes_parts_under_128_kb_that_join_back() -> None:
    # Given a JSON message of about 300 KB
    message = {"type": "state", "data": "x" * 300_000}
    text = dumps(message)
    # When it is split
    frames = split_frame(text)
    # Then every part fits API Gateway's limit, and they join into the same message
    assert len(frames) == 3
    assert all(len(f.encode()) <= MAX_FRAME_BYTES for f in frames if isinstance(f, str))
    parts = [json.loads(f) for f in frames]
    assert [p["part"] for p in parts] == [0, 1, 2]
    assert {p["parts"] for p in parts} == {3} and len({p["id"] for p in parts}) == 1
    joined = None
    reassembler = Reassembler()
    for frame in reversed(frames):  # any order
        joined = reassembler.feed(frame) or joined
    assert joined == text and json.loads(joined) == message


@pytest.mark.parametrize(
    "piece",
    ['"', "\\", "\n", "\x01", "é", "漢", "🙂"],
    ids=["quote", "backslash", "newline", "control", "latin", "cjk", "emoji"],
)
def test_escapes_and_multibyte_text_still_fit(piece: str) -> None:
    text = dumps({"data": piece * 5_000})
    frames = split_frame(text, limit=4_096)
    assert len(frames) > 1
    assert all(len(str(f).encode()) <= 4_096 for f in frames)
    reassembler = Reassembler()
    out = [reassembler.feed(f) for f in frames]
    assert out[-1] == text and all(o is None for o in out[:-1])


def test_binary_messages_are_split_as_base64_parts() -> None:
    data = bytes(range(256)) * 2_000  # 512 KB
    frames = split_frame(data)
    assert len(frames) == 6 and all(isinstance(f, str) for f in frames)
    assert all(len(str(f).encode()) <= MAX_FRAME_BYTES for f in frames)
    assert {json.loads(str(f))["encoding"] for f in frames} == {"base64"}
    reassembler = Reassembler()
    results = [reassembler.feed(f) for f in frames]
    assert results[-1] == data


def test_binary_messages_go_as_base64_text_to_a_connection_that_asked() -> None:
    from common.ws.frames import as_text, base64_frames, binary_from_text

    assert base64_frames({"frames": "base64"}) is True
    assert base64_frames({}) is False and base64_frames({"frames": "binary"}) is False
    data = bytes(range(256))
    text = as_text(data)
    assert isinstance(text, str) and binary_from_text(text) == data
    assert as_text('{"type":"close"}') == '{"type":"close"}'  # text stays text


@pytest.mark.parametrize("text", ["not base64!", "AAA", "A===", "é", "AA AA"])
def test_a_text_frame_that_is_not_strict_base64_is_refused(text: str) -> None:
    from common.ws.frames import binary_from_text

    with pytest.raises(ValueError, match="not base64"):
        binary_from_text(text)
