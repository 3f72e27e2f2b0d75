"""Accept and Content-Type reading, pinned where mutation testing found it loose: STOW-RS response
negotiation (a request without Accept gets JSON, never 406), empty list elements, accept-ext after q,
unterminated quotes, quoted pairs, wildcard part types, the frames' 406 list and the 406 message."""
from __future__ import annotations

import dataclasses

import pytest

from dicomrst.dicomweb.accept import (
    MediaRange,
    parse_accept,
    parse_content_type,
)
from dicomrst.dicomweb.negotiation import (
    FrameRepresentation,
    InstanceRepresentation,
    NotAcceptable,
    QidoMediaType,
    negotiate_frames,
    negotiate_instances,
    negotiate_qido,
    negotiate_stow_response,
)
from dicomrst.dicomweb import negotiation

JSON, XML = negotiation.StowResponseType.JSON, negotiation.StowResponseType.XML
OCTET = "application/octet-stream"


# --- STOW-RS response ----------------------------------------------------------------------------------


def test_stow_response_types_are_the_dicom_media_types():
    assert [member.value for member in negotiation.StowResponseType] == ["application/dicom+json", "application/dicom+xml"]


@pytest.mark.parametrize("accept", [None, "", "  ", "*/*", "application/*", "application/dicom+json", "application/json",
                                    "Application/DICOM+JSON", "text/html, application/json;q=0.1",
                                    "application/dicom+xml;q=0.5, application/dicom+json", "garbage"])
def test_stow_answers_json_by_default_and_when_asked(accept):
    assert negotiate_stow_response(accept) is JSON


@pytest.mark.parametrize("accept", ["application/dicom+xml", "Application/DICOM+XML",
                                    "application/dicom+json;q=0.5, application/dicom+xml",
                                    "text/html, application/dicom+xml;q=0.2"])
def test_stow_answers_xml_when_asked(accept):
    assert negotiate_stow_response(accept) is XML


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "application/dicom", "application/*;q=0, text/html",
                                    "multipart/related; type=\"application/dicom+xml\""])
def test_stow_answers_406_for_what_it_cannot_produce(accept):
    with pytest.raises(NotAcceptable) as info:
        negotiate_stow_response(accept)
    assert info.value.available == ("application/dicom+json", "application/dicom+xml")
    assert str(info.value) == ("none of the requested media types can be produced; available: "
                               "application/dicom+json, application/dicom+xml")


# --- Accept parsing ------------------------------------------------------------------------------------


def test_empty_list_elements_are_skipped_not_the_end_of_the_list():
    assert [r.essence for r in parse_accept("a/b, , c/d,,e/f")] == ["a/b", "c/d", "e/f"]
    assert negotiate_stow_response(", application/dicom+xml") is XML


def test_a_malformed_accept_extension_after_q_spoils_its_element():
    assert [r.essence for r in parse_accept("a/b; q=0.5; ext=1; ???, c/d")] == ["c/d"]
    (media_range,) = parse_accept("a/b; q=0.5; ext=1; level=2")
    assert media_range.params == {} and media_range.q == 0.5


def test_an_unterminated_quote_spoils_only_its_own_element():
    # The element with the open quote is malformed (ignored), so what can be produced is chosen ...
    assert negotiate_stow_response('text/html; x=",application/dicom+xml') is XML
    assert [r.essence for r in parse_accept('text/html; x=",application/dicom+xml')] == ["application/dicom+xml"]
    # ... and when nothing can, the header counts as */* rather than a 406.
    assert negotiate_stow_response('text/html; x=", text/plain') is JSON
    assert negotiate_qido('text/html; x=", text/plain') is QidoMediaType.JSON


def test_a_quoted_pair_escapes_any_character_a_line_break_too():
    (media_range,) = parse_accept('a/b; x="1\\\n2"')
    assert media_range.params == {"x": "1\n2"}
    content_type = parse_content_type('multipart/related; boundary="1\\\n2"')
    assert content_type is not None and content_type.params == {"boundary": "1\n2"}


def test_content_type_parameters_are_not_weighted():
    content_type = parse_content_type("multipart/related; q=0.5; boundary=abc")
    assert content_type is not None and content_type.params == {"q": "0.5", "boundary": "abc"}
    assert content_type.q == 1.0


def test_a_missing_or_empty_accept_header_is_one_range_of_weight_1():
    for header in (None, ""):
        (any_range,) = parse_accept(header)
        assert any_range == MediaRange("*", "*", {}, 1.0) and any_range.q == 1.0


def test_a_media_range_is_a_hashable_value():
    assert hash(MediaRange("a", "b", {"x": "1"})) == hash(MediaRange("a", "b", {"y": "2"}))
    assert len({MediaRange("a", "b"), MediaRange("a", "b")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        MediaRange("a", "b").q = 0.5  # type: ignore[misc]


def test_matches_reads_the_type_up_to_the_first_slash():
    assert MediaRange("application", "*").matches("application/x/y")
    assert MediaRange("application", "x/y").matches("Application/X/Y")
    assert not MediaRange("image", "*").matches("application/x/y")


# --- wildcard part types -------------------------------------------------------------------------------


@pytest.mark.parametrize("part_type", ["*/dicom+xml", "*/xml"])
def test_a_part_type_with_a_wildcard_type_but_not_subtype_is_ignored(part_type):
    accept = f'multipart/related; type="{part_type}"'
    # Ignored, not taken as XML: nothing else was asked for, so the header counts as */*.
    assert negotiate_qido(accept) is QidoMediaType.JSON
    assert negotiate_qido(f'{accept}, application/dicom+xml;q=0.1, multipart/related; type="text/html"') is \
        QidoMediaType.JSON
    assert negotiate_instances(f'multipart/related; type="{part_type}"', single_instance=True).container == "multipart"


def test_qido_takes_xml_for_its_part_type_in_any_case():
    assert negotiate_qido('multipart/related; type="Application/DICOM+XML"') is QidoMediaType.XML
    assert negotiate_qido('multipart/related; type="application/*"') is QidoMediaType.XML


# --- frames --------------------------------------------------------------------------------------------


def test_frames_406_lists_octet_stream_once_when_frames_are_stored_raw():
    with pytest.raises(NotAcceptable) as info:
        negotiate_frames("text/html", OCTET)
    assert info.value.available == (f'multipart/related; type="{OCTET}"',)
    with pytest.raises(NotAcceptable) as info:
        negotiate_frames("text/html", "Application/Octet-Stream")
    assert info.value.available == ('multipart/related; type="Application/Octet-Stream"',)
    with pytest.raises(NotAcceptable) as info:
        negotiate_frames("text/html", "image/jpeg")
    assert info.value.available == ('multipart/related; type="image/jpeg"', f'multipart/related; type="{OCTET}"')


def test_renditions_are_immutable_values():
    rendition = InstanceRepresentation("multipart", ("*",))
    frames = FrameRepresentation("image/jpeg", decompress=False)
    assert len({rendition, InstanceRepresentation("multipart", ("*",))}) == 1
    assert len({frames, FrameRepresentation("image/jpeg", False)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendition.container = "zip"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        frames.decompress = True  # type: ignore[misc]


def test_not_acceptable_says_what_is_available():
    error = NotAcceptable(["a/b", "c/d"])
    assert error.available == ("a/b", "c/d")
    assert str(error) == "none of the requested media types can be produced; available: a/b, c/d"
