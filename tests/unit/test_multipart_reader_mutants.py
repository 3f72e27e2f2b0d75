"""The multipart/related reader's edges, pinned where mutation testing found them loose: the 16 KiB
part-header cap, the boundary length bounds, reads split anywhere (inside the white space after a
delimiter too), how much it reads and holds, and the exact messages (they become the 400 body)."""
from __future__ import annotations


import pytest

from dicomrst.dicomweb.multipart_reader import (
    DEFAULT_CHUNK,
    MAX_BOUNDARY_LENGTH,
    MAX_HEADER_BYTES,
    MultipartError,
    MultipartReader,
)

BOUNDARY = "b0undary"
DELIMITER = b"--" + BOUNDARY.encode()


class Stream:
    """A request body read through ``read(size)``: records the sizes asked for and what was handed out,
    and fails a test that reads again after the end (``eof=True``) or past the body (``eof=False``: the
    client keeps its connection open, so a read past the body would block)."""

    def __init__(self, body: bytes, eof: bool = True) -> None:
        self.body = body
        self.position = 0
        self.eof = eof
        self.sizes: list[int] = []
        self.ended = False
        # (bytes handed out so far) at each read, to see what the reader held at a given moment
        self.read_so_far: list[int] = []

    def read(self, size: int) -> bytes:
        assert not self.ended, "read again after the end of the body"
        self.sizes.append(size)
        if self.position >= len(self.body):
            assert self.eof, "read past the body of a connection that stays open (would block)"
            self.ended = True
            return b""
        chunk = self.body[self.position:self.position + size]
        self.position += len(chunk)
        self.read_so_far.append(self.position)
        return chunk


def parts_of(body: bytes, chunk_size: int = 7, boundary: str = BOUNDARY, eof: bool = True) -> list[tuple[dict, bytes]]:
    stream = Stream(body, eof)
    reader = MultipartReader(stream.read, boundary, chunk_size)
    return [(headers, b"".join(chunks)) for headers, chunks in reader.parts()]


def error_of(body: bytes, chunk_size: int = 7, boundary: str = BOUNDARY) -> str:
    with pytest.raises(MultipartError) as info:
        parts_of(body, chunk_size, boundary)
    return str(info.value)


def body_of(*contents: bytes, headers: bytes = b"Content-Type: application/dicom\r\n") -> bytes:
    return b"".join(DELIMITER + b"\r\n" + headers + b"\r\n" + content + b"\r\n" for content in contents) + DELIMITER + b"--"


# --- the part-header cap --------------------------------------------------------------------------


def _header_block(length: int) -> bytes:
    """A header block of ``length`` bytes counting the blank line that ends it."""
    name = b"X-Padding: "
    return name + b"a" * (length - len(name) - 4) + b"\r\n\r\n"


def test_the_part_header_cap_is_16_kib():
    assert MAX_HEADER_BYTES == 16 * 1024
    # Read a byte at a time, the reader holds at most 16 KiB of headers without their end: a block
    # whose blank line completes at the next byte is read, one byte longer is refused.
    fits = DELIMITER + b"\r\n" + _header_block(16 * 1024 + 1) + b"ONE\r\n" + DELIMITER + b"--"
    ((headers, content),) = parts_of(fits, chunk_size=1)
    assert content == b"ONE" and len(headers["x-padding"]) == 16 * 1024 + 1 - len(b"X-Padding: \r\n\r\n")
    too_long = DELIMITER + b"\r\n" + _header_block(16 * 1024 + 2) + b"ONE\r\n" + DELIMITER + b"--"
    assert error_of(too_long, chunk_size=1) == "a part's headers are longer than 16 KiB"


def test_headers_longer_than_the_cap_are_refused_whatever_the_chunk_size():
    body = DELIMITER + b"\r\n" + b"X-Padding: " + b"a" * (40 * 1024) + b"\r\n\r\nONE\r\n" + DELIMITER + b"--"
    for chunk_size in (1000, 4096):
        assert error_of(body, chunk_size) == "a part's headers are longer than 16 KiB"


# --- the boundary -------------------------------------------------------------------------------


def test_boundary_lengths_from_1_to_1024_are_read():
    assert MAX_BOUNDARY_LENGTH == 1024
    for boundary in ("b", "x" * 1024):
        delimiter = b"--" + boundary.encode()
        body = delimiter + b"\r\n\r\nONE\r\n" + delimiter + b"--"
        assert parts_of(body, 64, boundary) == [({}, b"ONE")]


@pytest.mark.parametrize("boundary", ["", "x" * 1025])
def test_boundary_lengths_outside_1_to_1024_are_refused(boundary):
    with pytest.raises(MultipartError) as info:
        MultipartReader(Stream(b"").read, boundary)
    assert str(info.value) == "the multipart boundary must be 1 to 1024 characters"


def test_a_boundary_that_is_not_latin1_is_refused_with_its_message():
    with pytest.raises(MultipartError) as info:
        MultipartReader(Stream(b"").read, "b\u0100")
    assert str(info.value) == "the multipart boundary is not Latin-1 text"


def test_a_latin1_boundary_is_matched_as_its_latin1_bytes():
    boundary = "gr\u00fcn"
    delimiter = b"--gr\xfcn"
    assert parts_of(delimiter + b"\r\n\r\nONE\r\n" + delimiter + b"--", 5, boundary) == [({}, b"ONE")]


# --- reads split anywhere ------------------------------------------------------------------------

PADDED = (b"--b0undary \t \r\nContent-Type: application/dicom\r\n\r\nONE\r\n--b0undary\t\r\n\r\nTWO"
          b"\r\n--b0undary   \r\n\r\n\r\n--b0undary--")


@pytest.mark.parametrize("chunk_size", range(1, 41))
def test_a_read_may_end_anywhere_in_the_white_space_after_a_delimiter(chunk_size):
    assert parts_of(PADDED, chunk_size) == [
        ({"content-type": "application/dicom"}, b"ONE"), ({}, b"TWO"), ({}, b""),
    ]


def test_padding_up_to_the_line_limit_is_read_and_beyond_it_refused():
    # The line break must start within the first 80 bytes after the delimiter: 78 bytes of padding.
    for chunk_size in (1, 7, 1000):
        for padding in (b" " * 78, b"\t" * 78):
            body = DELIMITER + padding + b"\r\n\r\nONE\r\n" + DELIMITER + b"--"
            assert parts_of(body, chunk_size) == [({}, b"ONE")]
        body = DELIMITER + b" " * 79 + b"\r\n\r\nONE\r\n" + DELIMITER + b"--"
        assert error_of(body, chunk_size) == "a multipart delimiter is not followed by a line break"


def test_a_line_that_is_no_delimiter_line_is_refused_without_reading_the_rest_of_the_body():
    # Something else than white space and a line break after a delimiter: refused at once, however long
    # the body goes on without a line break (the reader must not take it all into memory first).
    stream = Stream(DELIMITER + b"X" * (4 << 20))
    with pytest.raises(MultipartError, match="not followed by a line break"):
        list(MultipartReader(stream.read, BOUNDARY, 64).parts())
    assert stream.position <= 1024


@pytest.mark.parametrize("chunk_size", [1, 8, 10, 40])
def test_a_bad_delimiter_line_is_refused_once_80_bytes_are_in_without_waiting_for_more(chunk_size):
    stream = Stream(DELIMITER + b"X" * 80, eof=False)  # the client sends no more and keeps waiting
    with pytest.raises(MultipartError, match="not followed by a line break"):
        list(MultipartReader(stream.read, BOUNDARY, chunk_size).parts())


@pytest.mark.parametrize("padding", [b" \r \r\n", b"\x0c\r\n", b"\x0b\r\n", b"\r\r\n"])
def test_only_spaces_and_tabs_may_pad_a_delimiter(padding):
    body = DELIMITER + padding + b"\r\nONE\r\n" + DELIMITER + b"--"
    assert error_of(body) == "a multipart delimiter is not followed by a line break"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 11, 64])
def test_a_body_that_ends_right_after_a_delimiter(chunk_size):
    for body in (DELIMITER, DELIMITER + b"-", DELIMITER + b" ", DELIMITER + b"\r\n\r\nONE\r\n" + DELIMITER):
        assert error_of(body, chunk_size) == "a multipart delimiter is not followed by a line break"


def test_a_preamble_may_hold_the_delimiter_not_at_a_line_start():
    for preamble in (b"X", b"XY", b"\n", b"\r"):
        body = preamble + DELIMITER + b"\r\n" + DELIMITER + b"\r\n\r\nONE\r\n" + DELIMITER + b"--"
        assert parts_of(body, 3) == [({}, b"ONE")], preamble


# --- what it reads and what it holds -------------------------------------------------------------


def test_reads_with_the_chunk_size_given_and_1_mib_by_default():
    body = body_of(b"x" * 5000, b"y")
    stream = Stream(body)
    assert [b"".join(chunks) for _, chunks in MultipartReader(stream.read, BOUNDARY, 100).parts()] == [b"x" * 5000, b"y"]
    assert set(stream.sizes) == {100}
    assert DEFAULT_CHUNK == 1 << 20
    stream = Stream(body)
    assert len(list(MultipartReader(stream.read, BOUNDARY).parts())) == 2
    assert set(stream.sizes) == {1 << 20}


@pytest.mark.parametrize("chunk_size", range(1, 30))
def test_never_reads_past_the_close_delimiter(chunk_size):
    # A client may keep the connection open after its body: a read beyond the close delimiter would block.
    body = b"preamble\r\n" + body_of(b"ONE", b"", b"THREE")
    assert [content for _, content in parts_of(body, chunk_size, eof=False)] == [b"ONE", b"", b"THREE"]
    assert parts_of(DELIMITER + b"--", chunk_size, eof=False) == []
    # An epilogue without a line break in the same chunk as the close delimiter is not waited for either.
    assert len(parts_of(body + b"epilogue", max(chunk_size, 20), eof=False)) == 3


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 13, 1000])
def test_never_reads_again_after_the_end_of_the_body(chunk_size):
    for body in (body_of(b"ONE") + b"\r\nepilogue", body_of(b"ONE")[:-3], DELIMITER + b"\r\nX-A: b",
                 DELIMITER + b" " * 100, b"no delimiter"):
        try:
            parts_of(body, chunk_size)
        except MultipartError:
            pass


def test_a_part_is_handed_on_while_it_is_read_holding_back_only_what_may_begin_a_delimiter():
    content = bytes(range(256)) * 4
    body = DELIMITER + b"\r\n\r\n" + content + b"\r\n" + DELIMITER + b"--"
    stream = Stream(body)
    _, chunks = next(MultipartReader(stream.read, BOUNDARY, 50).parts())
    held_back = []
    handed_on = 0
    for chunk in chunks:
        handed_on += len(chunk)
        held_back.append(stream.position - len(DELIMITER + b"\r\n\r\n") - handed_on)
    assert handed_on == len(content)
    inner_delimiter = len(b"\r\n" + DELIMITER)
    # Every chunk but the last leaves exactly one byte less than a delimiter in the buffer.
    assert set(held_back[:-1]) == {inner_delimiter - 1}


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 12, 13])
def test_no_chunk_is_empty(chunk_size):
    for body in (body_of(b"x" * 40, b"", b"y"), PADDED):
        reader = MultipartReader(Stream(body).read, BOUNDARY, chunk_size)
        for _, chunks in reader.parts():
            assert b"" not in list(chunks)


# --- headers -------------------------------------------------------------------------------------


def test_header_names_are_lower_cased_and_values_kept_whole():
    headers = (b"Content-Type : application/dicom \r\nContent-Location: http://host:8042/a:b\r\n"
               b"X-Name:caf\xe9\r\nX-Empty:\r\n")
    ((read_headers, content),) = parts_of(body_of(b"ONE", headers=headers))
    assert content == b"ONE"
    assert read_headers == {
        "content-type": "application/dicom",
        "content-location": "http://host:8042/a:b",
        "x-name": "caf\u00e9",
        "x-empty": "",
    }


def test_a_malformed_header_line_is_quoted_in_60_bytes():
    line = b"N" * 59 + b"0123456789"
    message = error_of(body_of(b"ONE", headers=line + b"\r\n"))
    assert message == f"malformed part header line {line[:60]!r}"
    assert error_of(body_of(b"ONE", headers=b": no name\r\n")) == "malformed part header line b': no name'"


# --- messages of the other breaks ----------------------------------------------------------------


def test_messages_name_where_the_body_breaks():
    assert error_of(b"just text") == "the body has no multipart delimiter for the declared boundary"
    assert error_of(b"x--b0undary") == "the body has no multipart delimiter for the declared boundary"
    assert error_of(DELIMITER + b"\r\n\r\ntruncated") == "the body ends inside a part (no closing delimiter)"
    assert error_of(DELIMITER + b"\r\nContent-Type: x") == "the body ends inside a part's headers"
    assert error_of(DELIMITER + b"X\r\n") == "a multipart delimiter is not followed by a line break"
