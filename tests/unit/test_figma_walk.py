"""The streamed walk: any slicing, any depth, the body's forms, and what reaches the store."""

from __future__ import annotations

import json

import pytest

from common.errors import InvalidInput, MalformedJson
from common.figma.intake import Intake
from tests.unit.test_figma_tokens import DESIGN_SYSTEM, MemorySink, analysed


def test_the_result_does_not_depend_on_how_the_bytes_arrive() -> None:
    # Given the same file whole, and in 1-byte, 7-byte and 4 KB slices
    whole, sink = analysed(DESIGN_SYSTEM)
    for step in (1, 7, 4096):
        sliced, sliced_sink = analysed(DESIGN_SYSTEM, slice_bytes=step)
        # Then the analysis (timings aside) and the stored bytes are the same
        assert sliced.tokens == whole.tokens and sliced.css == whole.css
        assert sliced.inventory == whole.inventory
        assert bytes(sliced_sink.data) == DESIGN_SYSTEM
    assert bytes(sink.data) == DESIGN_SYSTEM and sink.closed


def test_the_file_wrapped_as_file_with_options_gives_the_same_tokens() -> None:
    raw, _ = analysed(DESIGN_SYSTEM)
    body = b'{"options": {"async": false}, "file": ' + DESIGN_SYSTEM + b"}"
    sink = MemorySink()
    intake = Intake(open_sink=lambda: sink)
    intake.feed(body)
    intake.finish()
    from common.figma.service import analyse

    wrapped = analyse(intake)
    assert wrapped.tokens == raw.tokens and wrapped.inventory == raw.inventory
    # the options were held back until the body said it is a document, then stored too
    assert bytes(sink.data) == body
    assert intake.options == {"async": False} and "file" in intake.walker.top_keys


def test_a_tree_of_any_depth_is_walked_without_recursion() -> None:
    depth = 20_000
    node = '{"id":"%d","type":"FRAME","cornerRadius":4,"children":['
    body = ('{"document":' + "".join(node % i for i in range(depth)) + "]}" * depth + "}").encode()

    analysis, _ = analysed(body, slice_bytes=65536)

    assert analysis.stats.nodes == depth and analysis.stats.max_depth == depth - 1
    assert analysis.tokens["radius"]["4"]["$extensions"]["com.figma"]["uses"] == depth


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b'{"document": {"id": "0:0"', b"[1, 2]", b'"text"', b"{} {}"],
)
def test_a_body_that_is_not_one_json_object_is_refused(body: bytes) -> None:
    sink = MemorySink()
    intake = Intake(open_sink=lambda: sink)
    with pytest.raises(MalformedJson) as caught:
        intake.feed(body)
        intake.finish()
    intake.abort()
    assert caught.value.code == "malformed_json" and caught.value.status == 400


def test_a_parse_error_never_quotes_the_body() -> None:
    secret = "figd_" + "Z" * 40
    intake = Intake(open_sink=MemorySink)
    with pytest.raises(MalformedJson) as caught:
        intake.feed(b'{"file_key": "abc", "token": "' + secret.encode() + b'" oops}')
    assert secret not in json.dumps(caught.value.to_body())


def test_a_json_object_that_is_not_a_figma_file_is_422() -> None:
    intake = Intake(open_sink=MemorySink)
    intake.feed(b'{"name": "x", "options": {}}')
    with pytest.raises(InvalidInput, match="no `document`"):
        intake.finish()


def test_a_token_next_to_a_file_is_refused_before_it_is_stored() -> None:
    # Given a file followed, far into the body, by a token
    secret = "figd_" + "S3CRET" * 8
    padding = json.dumps({"pad": "x" * 200_000})
    body = (
        b'{"document": {"id": "0:0", "type": "DOCUMENT", "extra": '
        + padding.encode()
        + b'}, "token": "'
        + secret.encode()
        + b'"}'
    )
    sink = MemorySink()
    intake = Intake(open_sink=lambda: sink)
    # When it is fed in slices
    with pytest.raises(InvalidInput, match="not both"):
        for start in range(0, len(body), 1000):
            intake.feed(body[start : start + 1000])
    intake.abort()
    # Then the bytes before it went to the store, and never the token
    assert sink.data and secret.encode() not in bytes(sink.data) and sink.aborted


def test_a_file_key_request_stores_nothing_and_hands_over_the_token_once() -> None:
    sink = MemorySink()
    intake = Intake(open_sink=lambda: sink)
    intake.feed(b'{"file_key": "AbC123", "token": "figd_abc", "options": {"async": true}}')
    intake.finish()

    assert intake.form == "key" and not sink.data and intake.gridfs_id is None
    assert intake.take_key_and_token() == ("AbC123", "figd_abc")
    assert "token" not in intake.walker.request
    with pytest.raises(InvalidInput, match="token"):
        intake.take_key_and_token()


def test_file_key_before_a_document_is_refused_too() -> None:
    intake = Intake(open_sink=MemorySink)
    with pytest.raises(InvalidInput, match="not both"):
        intake.feed(b'{"file_key": "abc", "document": {}}')


def test_bad_options_are_422_naming_the_field_not_the_value() -> None:
    from common.figma.service import parse_options

    with pytest.raises(InvalidInput) as caught:
        parse_options({"components": {"framework": "vue-secret"}, "colour": 1})
    paths = sorted(f["path"] for f in caught.value.details["fields"])
    assert paths == ["body.options.colour", "body.options.components.framework"]
    assert "vue-secret" not in json.dumps(caught.value.to_body())
    assert parse_options(None).run_async is False
    assert parse_options({"async": True}).run_async is True
