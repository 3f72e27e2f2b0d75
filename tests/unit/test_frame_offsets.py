"""Frame byte ranges read from the header agree with frames.extract_frames for every file of pydicom's
test set that can be indexed, and files that cannot be indexed say so rather than mislead."""
from __future__ import annotations

from pathlib import Path

import pydicom.data
import pytest
from pydicom.uid import ExplicitVRBigEndian

from dicomrst.dicomweb.frame_offsets import frame_offsets
from dicomrst.dicomweb.frames import extract_frames
from dicomrst.dicomweb.part10 import transfer_syntax_of

TEST_FILES = sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm"))


def _frames_read_the_ordinary_way(part10: bytes, count: int) -> list[bytes] | None:
    try:
        return extract_frames(part10, list(range(1, count + 1)), decompress=False)
    except Exception:
        return None


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda path: path.name)
def test_ranges_give_the_frames_extract_frames_gives(path: Path):
    part10 = path.read_bytes()
    offsets = frame_offsets(part10)
    if offsets is None:
        return
    expected = _frames_read_the_ordinary_way(part10, offsets.count)
    assert expected is not None, "indexed a file whose frames cannot be read"
    assert [b"".join(part10[start:start + length] for start, length in ranges) for ranges in offsets.frames] == expected
    assert offsets.transfer_syntax == transfer_syntax_of(part10)


def test_most_test_files_are_indexed_and_big_endian_is_not():
    indexed = {path.name for path in TEST_FILES if frame_offsets(path.read_bytes()) is not None}
    assert len(indexed) >= 40
    assert {"CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "rtdose.dcm", "examples_ybr_color.dcm"} <= indexed
    big_endian = [p for p in TEST_FILES if p.name in {"MR_small_bigendian.dcm", "MR_small_expb.dcm"}]
    assert all(transfer_syntax_of(p.read_bytes()) == ExplicitVRBigEndian for p in big_endian)
    assert big_endian and all(frame_offsets(p.read_bytes()) is None for p in big_endian)


def test_a_truncated_or_foreign_object_has_no_index():
    part10 = (Path(pydicom.data.__file__).parent / "test_files" / "CT_small.dcm").read_bytes()
    assert frame_offsets(part10[:-1000]) is None
    assert frame_offsets(b"not dicom at all") is None
