"""``encoded_element_json`` against pydicom: whenever it answers, its answer is pydicom's."""
import io
import json
import struct

from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.uid import UID
from pynetdicom.dsutils import decode

from dicomrst.dicomweb.dicom_json import dataset_to_json
from dicomrst.dicomweb.encoded_json import encoded_element_json, text_element_json

_TEXT_VRS = ["AE", "AS", "CS", "DA", "DT", "TM", "SH", "LO", "UC", "LT", "ST", "UT", "UI", "PN", "IS", "DS", "UR"]
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _tags_with(vr: str) -> list[int]:
    return sorted(tag for tag, entry in DicomDictionary.items()
                  if entry[0] == vr and tag >> 16 not in (0x0002, 0x0000) and tag & 0xFFFF and tag < 0x7FE00000
                  and tag != 0x00080005)  # the character set is drawn on its own


_TAGS = {vr: _tags_with(vr)[:40] for vr in [*_TEXT_VRS, *_BINARY_VRS]}
# Characters that matter to pydicom's reading: separators, padding, signs, name groups and nulls.
_TEXT_BYTES = st.binary(max_size=0) | st.lists(
    st.sampled_from(b"AZaz09.+-eE ^=\\\x00_/:*?" + b"\x1b\xe9"), max_size=24).map(bytes)
_PLAUSIBLE = st.sampled_from([b"ORIGINAL\\PRIMARY", b"20240131", b"120000.123456", b"1.2.840.10008.5.1.4.1.1.2",
                              b"Smith^John ", b"Smith^John^^Dr", b"12 ", b" -7", b"1.5e3 ", b".5\\2\\-3.25E-2",
                              b"CT\\MR ", b"ORTHANC     ", b"045Y", b"A\\\\B", b"ISO_IR 100", b"\\", b"  "])


def _encode(tag: int, vr: str, value: bytes, implicit: bool, little: bool) -> bytes:
    """One element as it comes over the wire (PS3.5 7.1)."""
    endian = "<" if little else ">"
    head = struct.pack(endian + "HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(endian + "I", len(value)) + value
    if vr in _LONG_LENGTH_VRS:
        return head + vr.encode() + b"\0\0" + struct.pack(endian + "I", len(value)) + value
    return head + vr.encode() + struct.pack(endian + "H", len(value)) + value


@st.composite
def _elements(draw: st.DrawFn) -> tuple[int, str, bytes]:
    vr = draw(st.sampled_from([*_TEXT_VRS, *_BINARY_VRS]))
    tag = draw(st.sampled_from(_TAGS[vr]))
    if vr in _BINARY_VRS:
        size = struct.calcsize(_BINARY_VRS[vr])
        value = draw(st.binary(max_size=4 * size) | st.binary(min_size=1, max_size=size - 1))
    else:
        value = draw(_TEXT_BYTES | _PLAUSIBLE)
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    return tag, vr, value


def _read(encoded: bytes, implicit: bool, little: bool) -> Dataset:
    return decode(io.BytesIO(encoded), implicit, little)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_elements(), min_size=1, max_size=6, unique_by=lambda element: element[0]),
       st.booleans(), st.booleans(), st.sampled_from([None, b"ISO_IR 100", b"ISO_IR 192"]))
@example([(0x00100010, "PN", b"Smith^John=Yamada")], False, True, None)
@example([(0x00200013, "IS", b"2147483648")], False, True, None)
@example([(0x00080060, "CS", b"mr")], True, True, None)
def test_answers_are_pydicoms(elements, implicit, little, charset):
    little = little or not implicit  # implicit VR is little endian only
    if charset is not None:
        elements = [(0x00080005, "CS", charset), *elements]
    encoded = b"".join(_encode(tag, vr, value, implicit, little) for tag, vr, value in sorted(elements))
    expected = _read(encoded, implicit, little).to_json_dict(suppress_invalid_tags=True)
    ds = _read(encoded, implicit, little)
    answered = 0
    for element in ds.elements():
        if not isinstance(element, RawDataElement):  # pydicom converts some empty values as it reads
            continue
        answer = encoded_element_json(element)
        if answer is not None:
            answered += 1
            assert expected.get(f"{element.tag:08X}") == answer, (element, answer)
    whole = dataset_to_json(_read(encoded, implicit, little))
    # Compared as JSON text, where NaN (an FL value pydicom passes on) equals itself.
    assert json.dumps({key: value for key, value in whole.items() if key != "00080005"}) == \
        json.dumps({key: value for key, value in sorted(expected.items()) if key != "00080005"})
    event(f"elements answered from their bytes: {min(answered, 3)}+")


def _answer(tag: int, vr: str, value: bytes) -> dict | None:
    (element,) = _read(_encode(tag, vr, value, False, True), False, True).elements()
    return encoded_element_json(element)


def test_the_plain_cases_are_answered():
    assert _answer(0x00080061, "CS", b"CT\\MR ") == {"vr": "CS", "Value": ["CT", "MR"]}
    assert _answer(0x00100010, "PN", b"Smith^John ") == {"vr": "PN", "Value": [{"Alphabetic": "Smith^John"}]}
    assert _answer(0x00201208, "IS", b"12") == {"vr": "IS", "Value": [12]}
    assert _answer(0x00280030, "DS", b"0.5\\0.25") == {"vr": "DS", "Value": [0.5, 0.25]}
    assert _answer(0x00280010, "US", b"\x00\x02") == {"vr": "US", "Value": [512]}
    assert _answer(0x0020000D, "UI", b"1.2.3\0") == {"vr": "UI", "Value": ["1.2.3"]}
    assert _answer(0x00081030, "LO", b"") == {"vr": "LO"}


def test_what_pydicom_must_decide_is_left_to_it():
    assert _answer(0x00100010, "PN", "Müller".encode("latin-1")) is None  # not ASCII: the character set decides
    assert _answer(0x00100010, "PN", b"Yamada^Tarou=Y") is None  # name groups
    assert _answer(0x00200013, "IS", b"1.5") is None  # invalid: pydicom leaves it out
    assert _answer(0x00090010, "LO", b"PRIVATE") is None  # private creator
    assert _answer(0x00080060, "CS", b"mr") is None  # lower case is not a CS value


_CONVERTED = st.sampled_from([("UR", "http://h/aets/A/studies/1.2"), ("UI", UID("1.2.3")), ("CS", "CT"), ("CS", ["CT", "MR"]),
                              ("LO", ""), ("UT", "a\\b"), ("PN", "Smith^J"), ("IS", "12"), ("DS", "1.5"), ("DA", None),
                              ("AE", "ORTHANC"), ("SH", "A1"), ("US", 512)])


@given(_CONVERTED)
def test_converted_answers_are_pydicoms(case):
    vr, value = case
    tag = _TAGS[vr][0]
    element = DataElement(tag, vr, value)
    answer = text_element_json(element)
    if answer is not None:
        assert answer == element.to_json_dict(None, 1024)
    assert (answer is not None) == (vr in ("UR", "UI", "CS", "UT", "AE", "SH") and isinstance(value, str) and value != "")
