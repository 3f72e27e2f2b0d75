import email.parser
import email.policy
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomrst.dicomweb.multipart import Part, multipart_content_type, new_boundary, write_multipart

XML_TYPE = "application/dicom+xml"


def _split(body: bytes, boundary: str) -> list[tuple[bytes, bytes]]:
    """Independent RFC 2046 reader for the tests: [(header block, body)]."""
    delimiter = b"\r\n--" + boundary.encode()
    assert body.startswith(b"--" + boundary.encode() + b"\r\n") or body == b"--" + boundary.encode() + b"--\r\n"
    assert body.endswith(b"--\r\n")
    inner = (b"\r\n" + body)[: -len(b"--\r\n")]
    chunks = inner.split(delimiter)
    assert chunks[0] == b""
    parts = []
    for chunk in chunks[1:]:
        if not chunk:
            continue  # the close delimiter's position
        assert chunk.startswith(b"\r\n")
        headers, _, content = chunk[2:].partition(b"\r\n\r\n")
        parts.append((headers, content))
    return parts


def test_new_boundary_is_random_and_safe():
    boundaries = {new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        assert re.fullmatch(r"[0-9a-f]{32}", boundary)


def test_multipart_content_type():
    assert multipart_content_type(XML_TYPE, "abc123") == 'multipart/related; type="application/dicom+xml"; boundary=abc123'


def test_multipart_content_type_quotes_boundary_when_needed():
    assert multipart_content_type("application/dicom", "a:b=c").endswith('boundary="a:b=c"')


@pytest.mark.parametrize("boundary", ["", "a b", "x" * 71, 'a"b', "a\r\nb", "ä"])
def test_invalid_boundaries_are_refused(boundary):
    with pytest.raises(ValueError):
        multipart_content_type(XML_TYPE, boundary)
    with pytest.raises(ValueError):
        list(write_multipart([b"x"], XML_TYPE, boundary))


@pytest.mark.parametrize("part_type", ['application/dicom"; x="', "application", "application/dicom; a=b", ""])
def test_invalid_part_types_are_refused(part_type):
    with pytest.raises(ValueError):
        multipart_content_type(part_type, "abc")


def test_exact_wire_format():
    body = b"".join(write_multipart([b"<a/>", b"<b/>"], "application/dicom+xml", "BND"))
    assert body == (
        b"--BND\r\nContent-Type: application/dicom+xml\r\n\r\n<a/>"
        b"\r\n--BND\r\nContent-Type: application/dicom+xml\r\n\r\n<b/>"
        b"\r\n--BND--\r\n"
    )


def test_zero_parts_write_only_the_close_delimiter():
    assert b"".join(write_multipart([], XML_TYPE, "BND")) == b"--BND--\r\n"


def test_stdlib_email_parser_reads_it_back():
    boundary = new_boundary()
    bodies = [b"first part", b"second\r\npart with CRLF\r\n", b"--not-a-boundary"]
    payload = b"".join(write_multipart(bodies, XML_TYPE, boundary))
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + multipart_content_type(XML_TYPE, boundary).encode() + b"\r\n\r\n" + payload
    )
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == [XML_TYPE] * 3
    assert [p.get_payload(decode=True) for p in parts] == bodies


def test_per_part_headers_extend_and_override_case_insensitively():
    parts = [
        Part(b"one", {"Content-Location": "/studies/1.2/instances/1.2.3"}),
        Part(b"two", {"content-type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"}),
        b"three",
    ]
    parsed = _split(b"".join(write_multipart(parts, "application/dicom", "BND")), "BND")
    assert parsed == [
        (b"Content-Type: application/dicom\r\nContent-Location: /studies/1.2/instances/1.2.3", b"one"),
        (b"content-type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1", b"two"),
        (b"Content-Type: application/dicom", b"three"),
    ]


@pytest.mark.parametrize(
    "headers", [{"X-Evil": "a\r\nInjected: yes"}, {"X-Evil": "a\nb"}, {"Bad Name": "x"}, {"X": "ü"}]
)
def test_header_injection_is_refused(headers):
    with pytest.raises(ValueError):
        list(write_multipart([Part(b"x", headers)], XML_TYPE, "BND"))


class _Recorder:
    """A part source that records how far it has been consumed."""

    def __init__(self, parts: list[bytes], fail_after: int | None = None) -> None:
        self.parts = parts
        self.fail_after = fail_after
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if self.fail_after is not None and self.pulled == self.fail_after:
                raise RuntimeError("backend died")
            self.pulled += 1
            yield part
        if self.fail_after is not None and self.pulled == self.fail_after:
            raise RuntimeError("backend died")


def test_writer_is_lazy_one_part_at_a_time():
    source = _Recorder([b"a" * 10, b"b" * 10, b"c" * 10])
    stream = write_multipart(source, XML_TYPE, "BND")
    assert source.pulled == 0  # nothing happens before the first pull
    chunks = [next(stream), next(stream)]
    assert source.pulled == 1
    assert chunks[1] == b"a" * 10  # the body is passed through, not copied into a joined buffer
    next(stream)
    assert source.pulled == 2
    rest = list(stream)
    assert source.pulled == 3
    assert b"".join(chunks + rest).endswith(b"--BND--\r\n")


def test_large_body_is_yielded_as_is():
    big = bytes(5_000_000)
    chunks = list(write_multipart([big], "application/dicom", "BND"))
    assert any(chunk is big for chunk in chunks)


def test_failure_propagates_without_close_delimiter():
    source = _Recorder([b"one", b"two", b"three"], fail_after=2)
    received = []
    with pytest.raises(RuntimeError, match="backend died"):
        for chunk in write_multipart(source, XML_TYPE, "BND"):
            received.append(chunk)
    body = b"".join(received)
    assert b"one" in body and b"two" in body
    assert b"--BND--" not in body


def test_failure_before_first_part_yields_nothing():
    source = _Recorder([b"one"], fail_after=0)
    stream = write_multipart(source, XML_TYPE, "BND")
    with pytest.raises(RuntimeError):
        next(stream)


def test_failure_after_last_part_still_has_no_close_delimiter():
    source = _Recorder([b"one"], fail_after=1)
    received = []
    with pytest.raises(RuntimeError):
        for chunk in write_multipart(source, XML_TYPE, "BND"):
            received.append(chunk)
    assert b"--BND--" not in b"".join(received)


@given(st.lists(st.binary(max_size=200), max_size=6))
def test_round_trip_arbitrary_bodies(bodies):
    boundary = new_boundary()
    payload = b"".join(write_multipart(bodies, "application/octet-stream", boundary))
    parsed = _split(payload, boundary)
    assert [content for _, content in parsed] == bodies
    assert all(headers == b"Content-Type: application/octet-stream" for headers, _ in parsed)
