import io
import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pynetdicom.dsutils import decode, encode

from dicomrst.dicomweb.dicom_json import dataset_to_json, encode_json_array


def _over_the_wire(ds: Dataset) -> Dataset:
    """Encode and decode as a C-FIND response would be, so values arrive as raw bytes."""
    return decode(io.BytesIO(encode(ds, True, True)), True, True)


def _raw(tag: int, vr: str, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, True, True)


def test_iso_ir_100_name_is_decoded():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds[0x00100010] = _raw(0x00100010, "PN", "Müller^Jürgen".encode("latin-1"))
    ds.PatientID = "ID1"
    result = dataset_to_json(_over_the_wire(ds))
    assert result["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]}
    assert result["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}


def test_iso_ir_192_japanese_name_is_decoded():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.StudyDescription = "胸部 CT"
    result = dataset_to_json(_over_the_wire(ds))
    assert result["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    assert result["00081030"]["Value"] == ["胸部 CT"]
    assert result["00080005"]["Value"] == ["ISO_IR 192"]


def test_iso_2022_japanese_is_declared_utf8_after_decoding():
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    result = dataset_to_json(_over_the_wire(ds))
    assert result["00100010"]["Value"] == [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}]
    assert result["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}


def test_no_specific_character_set_is_not_invented():
    ds = Dataset()
    ds.PatientID = "X"
    assert "00080005" not in dataset_to_json(ds)


def test_charset_inside_sequence_items_is_rewritten_too():
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 100"
    item.PatientID = "X"
    ds = Dataset()
    ds.ReferencedStudySequence = Sequence([item])
    result = dataset_to_json(ds)
    assert result["00081110"]["Value"][0]["00080005"]["Value"] == ["ISO_IR 192"]


def test_invalid_is_value_does_not_fail_the_dataset():
    ds = Dataset()
    ds.PatientID = "ID1"
    ds[0x00200013] = _raw(0x00200013, "IS", b"abc")
    ds[0x00201208] = _raw(0x00201208, "IS", b"12")
    result = dataset_to_json(ds)
    assert "00200013" not in result
    assert result["00100020"]["Value"] == ["ID1"]
    assert result["00201208"]["Value"] == [12]


def test_invalid_value_inside_a_sequence_does_not_fail_the_dataset():
    item = Dataset()
    item[0x00200013] = _raw(0x00200013, "IS", b"1.5.x")
    ds = Dataset()
    ds.ReferencedSeriesSequence = Sequence([item])
    ds.PatientID = "ID1"
    assert dataset_to_json(ds)["00100020"]["Value"] == ["ID1"]


def test_values_and_binary_follow_the_json_model():
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows = 512
    ds.add_new(0x00091010, "OB", b"\x00\x01\x02")
    result = dataset_to_json(ds)
    assert result["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}
    assert result["00280010"] == {"vr": "US", "Value": [512]}
    assert result["00091010"] == {"vr": "OB", "InlineBinary": "AAEC"}


def _decode_array(chunks: list[bytes]) -> object:
    return json.loads(b"".join(chunks).decode("utf-8"))


def test_encode_empty_array():
    assert b"".join(encode_json_array([])) == b"[]"
    assert _decode_array(list(encode_json_array(iter([])))) == []


def test_encode_array_is_utf8_not_escaped():
    items = [{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]}}, {"a": "山田"}]
    body = b"".join(encode_json_array(items))
    assert "Müller^Jürgen".encode() in body
    assert "山田".encode() in body
    assert b"\\u" not in body
    assert json.loads(body) == items


class _Source:
    def __init__(self, items: list[dict], fail_after: int | None = None) -> None:
        self.items, self.fail_after, self.pulled = items, fail_after, 0

    def __iter__(self) -> Iterator[dict]:
        for item in self.items:
            if self.pulled == self.fail_after:
                raise RuntimeError("association aborted")
            self.pulled += 1
            yield item
        if self.pulled == self.fail_after:
            raise RuntimeError("association aborted")


def test_encode_array_is_lazy():
    source = _Source([{"n": 1}, {"n": 2}, {"n": 3}])
    stream = encode_json_array(source)
    assert source.pulled == 0
    assert next(stream) == b'[{"n": 1}'
    assert source.pulled == 1
    assert next(stream) == b',{"n": 2}'
    assert source.pulled == 2
    assert b"".join(stream) == b',{"n": 3}]'


def test_encode_array_failure_propagates_without_closing_bracket():
    received = []
    with pytest.raises(RuntimeError, match="aborted"):
        for chunk in encode_json_array(_Source([{"n": 1}, {"n": 2}], fail_after=1)):
            received.append(chunk)
    assert b"".join(received) == b'[{"n": 1}'


def test_encode_array_failure_before_first_item_yields_nothing():
    stream = encode_json_array(_Source([{"n": 1}], fail_after=0))
    with pytest.raises(RuntimeError):
        next(stream)


def test_encode_array_failure_at_the_end_has_no_closing_bracket():
    received = []
    with pytest.raises(RuntimeError):
        for chunk in encode_json_array(_Source([{"n": 1}], fail_after=1)):
            received.append(chunk)
    assert not b"".join(received).endswith(b"]")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)


@given(st.lists(st.dictionaries(st.text(), _JSON, max_size=4), max_size=5))
def test_encode_array_round_trips(items):
    assert json.loads(b"".join(encode_json_array(items)).decode("utf-8")) == items


def test_items_at_hand_leave_together():
    at_hand = iter([True, True, False, False, True, True])  # asked after each item
    chunks = list(encode_json_array(({"n": n} for n in range(6)), next_ready=lambda: next(at_hand)))
    assert chunks == [b'[{"n": 0},{"n": 1},{"n": 2}', b',{"n": 3}', b',{"n": 4},{"n": 5}]']


def test_items_at_hand_leave_in_chunks_of_bounded_size():
    chunks = list(encode_json_array(({"n": "x" * 100} for _ in range(50)), next_ready=lambda: True,
                                    chunk_size=1000))
    assert len(chunks) == 6 and all(len(chunk) <= 1000 + 120 for chunk in chunks)
    assert len(json.loads(b"".join(chunks))) == 50


def test_an_item_is_never_held_while_the_source_waits():
    pulled: list[int] = []

    def source() -> Iterator[dict]:
        for n in range(3):
            pulled.append(n)
            yield {"n": n}

    stream = encode_json_array(source(), next_ready=lambda: False)
    assert next(stream) == b'[{"n": 0}' and pulled == [0]
