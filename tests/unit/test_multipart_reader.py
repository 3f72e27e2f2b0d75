import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.dicomweb.multipart_reader import MultipartError, MultipartReader


def read_all(body: bytes, boundary: str = "b0undary", chunk_size: int = 7) -> list[tuple[dict, bytes]]:
    reader = MultipartReader(io.BytesIO(body).read, boundary, chunk_size)
    return [(headers, b"".join(chunks)) for headers, chunks in reader.parts()]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 1 << 20])
def test_round_trip_with_the_writer(chunk_size):
    parts = [b"first\r\n--b0undar", b"", b"x--b0undary\r\n" * 3, bytes(range(256)) * 10]
    body = b"".join(write_multipart(parts, "application/dicom", "b0undary"))
    assert [content for _, content in read_all(body, chunk_size=chunk_size)] == parts
    assert all(headers == {"content-type": "application/dicom"} for headers, _ in read_all(body))


def test_preamble_epilogue_and_whitespace_after_delimiters():
    body = (b"preamble --b0undary text\r\n--b0undary  \r\nContent-Type: application/dicom\r\n\r\nONE"
            b"\r\n--b0undary\r\n\r\nTWO\r\n--b0undary--\r\nepilogue")
    assert read_all(body) == [({"content-type": "application/dicom"}, b"ONE"), ({}, b"TWO")]


def test_empty_multipart_has_no_parts():
    assert read_all(b"--b0undary--\r\n") == []


@pytest.mark.parametrize("body, message", [
    (b"no delimiter at all", "no multipart delimiter"),
    (b"--b0undary\r\nContent-Type: x\r\n\r\ntruncated data", "ends inside a part"),
    (b"--b0undary\r\nContent-Type: x", "ends inside a part's headers"),
    (b"--b0undary\r\nbroken header\r\n\r\ndata\r\n--b0undary--", "malformed part header"),
    (b"--b0undaryX\r\n\r\n", "not followed by a line break"),
])
def test_malformed_bodies(body, message):
    with pytest.raises(MultipartError, match=message):
        read_all(body)


def test_unread_parts_are_skipped():
    body = b"".join(write_multipart([b"a" * 100, b"b" * 100], "x/y", "b0undary"))
    reader = MultipartReader(io.BytesIO(body).read, "b0undary", 10)
    seen = [headers for headers, _ in reader.parts()]
    assert len(seen) == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_arbitrary_bodies_raise_only_multipart_errors(body, chunk_size):
    try:
        read_all(body, chunk_size=chunk_size)
    except MultipartError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=5), st.integers(min_value=1, max_value=64))
def test_any_parts_round_trip(parts, chunk_size):
    body = b"".join(write_multipart(parts, "application/dicom", "b0undary"))
    assert [content for _, content in read_all(body, chunk_size=chunk_size)] == parts


ORTHANC_BOUNDARY = "9ab04b14-998e-4fee-9019-e8848abf0ed0-9ab04b14-998e-4fee-9019-e8848abf0ed0"  # 73 characters


def _body(parts: list[bytes], boundary: str) -> bytes:
    # Written by hand: the gateway's own writer keeps to RFC 2046's 70 characters for what it sends.
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = [delimiter + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts]
    return b"".join(pieces) + delimiter + b"--\r\n"


@pytest.mark.parametrize("boundary", [ORTHANC_BOUNDARY, "x" * 71, "b" * 200, "=_Part_" + "7" * 1017])
@pytest.mark.parametrize("chunk_size", [1, 5, 64, 1 << 20])
def test_boundaries_longer_than_70_characters(boundary, chunk_size):
    assert len(ORTHANC_BOUNDARY) == 73
    parts = [b"ONE", b"", b"--" + boundary[:-1].encode() + b"\r\n", b"three"]
    assert [content for _, content in read_all(_body(parts, boundary), boundary, chunk_size)] == parts


@pytest.mark.parametrize("boundary", ["", "b" * 1025])
def test_boundary_length_is_bounded_against_abuse(boundary):
    with pytest.raises(MultipartError, match="1 to 1024 characters"):
        MultipartReader(io.BytesIO(b"").read, boundary)


def test_boundary_that_is_not_latin1_is_a_multipart_error():
    with pytest.raises(MultipartError, match="Latin-1"):
        MultipartReader(io.BytesIO(b"").read, "b\u0100")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=4),
       st.text(alphabet=st.sampled_from(list("0123456789abcdefABCDEF'()+_,-./:=? ")), min_size=1, max_size=1024)
       .filter(lambda b: not b.endswith(" ")),
       st.integers(min_value=1, max_value=64))
def test_any_boundary_up_to_1024_round_trips(parts, boundary, chunk_size):
    assume(not any(b"\r\n--" + boundary.encode() in b"\r\n" + part + b"\r\n" for part in parts))
    assert [content for _, content in read_all(_body(parts, boundary), boundary, chunk_size)] == parts
