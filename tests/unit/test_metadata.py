import base64
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomrst.dicomweb.dicom_json import dataset_to_json
from dicomrst.dicomweb.metadata import (
    MAX_NESTING,
    BulkDataNotFound,
    BulkDataPathError,
    bulkdata_path,
    bulkdata_uri,
    bulkdata_value,
    instance_metadata,
    instance_metadata_xml,
    parse_bulkdata_path,
)
from dicomrst.dicomweb.dicom_xml import NATIVE_DICOM_NS, dataset_to_xml

URL = "https://gw.example/aets/PACS/rs/studies/1.2/series/1.2.3/instances/1.2.3.4"
NS = {"n": NATIVE_DICOM_NS}

CONTENT_SEQUENCE = 0x0040A730
ENCAPSULATED_DOCUMENT = 0x00420011
ICON_IMAGE_SEQUENCE = 0x00880200
PIXEL_DATA = 0x7FE00010


def data_file(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def read(part10: bytes) -> Dataset:
    return dcmread(BytesIO(part10))


def part10(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID = generate_uid()
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def nested_instance() -> bytes:
    """Binary values at depths 0, 1 and 2, large and small; an icon with its own small Pixel Data."""
    inner = Dataset()
    inner.add_new(ENCAPSULATED_DOCUMENT, "OB", b"%PDF" + b"x" * 1996)  # 2000 bytes
    small = Dataset()
    small.add_new(ENCAPSULATED_DOCUMENT, "OB", b"tiny")
    outer_first = Dataset()
    outer_first.ValueType = "TEXT"
    outer_second = Dataset()
    outer_second.add_new(CONTENT_SEQUENCE, "SQ", Sequence([small, inner]))
    icon = Dataset()
    icon.Rows = icon.Columns = 2
    icon.BitsAllocated = 8
    icon.add_new(PIXEL_DATA, "OB", b"\x01\x02\x03\x04")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.add_new(CONTENT_SEQUENCE, "SQ", Sequence([outer_first, outer_second]))
    ds.add_new(ICON_IMAGE_SEQUENCE, "SQ", Sequence([icon]))
    ds.add_new(ENCAPSULATED_DOCUMENT, "OB", b"A" * 1025)
    ds.add_new(0x00420012, "LO", "application/pdf")
    return part10(ds)


NESTED_PATHS = {
    f"{CONTENT_SEQUENCE:08X}/1/{CONTENT_SEQUENCE:08X}/1/{ENCAPSULATED_DOCUMENT:08X}": b"%PDF" + b"x" * 1996,
    f"{ICON_IMAGE_SEQUENCE:08X}/0/7FE00010": b"\x01\x02\x03\x04",
    f"{ENCAPSULATED_DOCUMENT:08X}": b"A" * 1025 + b"\0",  # padded to even length when stored
}


# --- paths ---------------------------------------------------------------------------------------------


def test_bulkdata_path_and_uri():
    assert bulkdata_path([0x7FE00010]) == "7FE00010"
    assert bulkdata_path([(0x00400275, 0), 0x00081150]) == "00400275/0/00081150"
    assert bulkdata_path([(0x0040A730, 3), (0x0040A730, 12), 0x0042000A]) == "0040A730/3/0040A730/12/0042000A"
    assert bulkdata_uri(URL, [0x7FE00010]) == f"{URL}/bulkdata/7FE00010"
    assert bulkdata_uri(URL + "/", [(0x00880200, 0), 0x7FE00010]) == f"{URL}/bulkdata/00880200/0/7FE00010"


def test_bulkdata_path_rejects_a_misshapen_path():
    with pytest.raises(TypeError):
        bulkdata_path([0x00400275, 0x00081150])
    with pytest.raises(TypeError):
        bulkdata_path([(0x00400275, 0)])


@given(
    st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 10**9 - 1)), max_size=MAX_NESTING),
    st.integers(0, 0xFFFFFFFF),
)
def test_parse_bulkdata_path_inverts_bulkdata_path(items, tag):
    element_path = (*items, tag)
    assert parse_bulkdata_path(bulkdata_path(element_path)) == element_path


def test_parse_bulkdata_path_accepts_lower_case_hex():
    assert parse_bulkdata_path("7fe00010") == (0x7FE00010,)


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("", "''"),
        ("7FE0001", "'7FE0001'"),
        ("7FE000100", "'7FE000100'"),
        ("7FE00010/0", "is not TAG"),
        ("0040027G/0/00081150", "'0040027G'"),
        ("00400275/x/00081150", "'x'"),
        ("00400275/-1/00081150", "'-1'"),
        ("00400275/+1/00081150", "'+1'"),
        ("/7FE00010", "is not TAG"),
        ("7FE00010/", "is not TAG"),
        ("00400275//00081150", "''"),
        ("(7FE0,0010)", "'(7FE0,0010)'"),
        ("/".join(["00400275/0"] * (MAX_NESTING + 1) + ["00081150"]), "is not TAG"),
    ],
)
def test_parse_bulkdata_path_errors(path, named):
    with pytest.raises(BulkDataPathError) as info:
        parse_bulkdata_path(path)
    assert isinstance(info.value, ValueError)
    assert named in str(info.value)
    assert len(str(info.value)) < 120


# --- JSON --------------------------------------------------------------------------------------------------


def test_pixel_data_and_large_binaries_become_uris_the_rest_is_dataset_to_json():
    part = data_file("CT_small.dcm")
    metadata = instance_metadata(part, URL)
    assert metadata["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{URL}/bulkdata/7FE00010"}
    # (0043,1029) is a private OB of 2068 bytes.
    assert metadata["00431029"] == {"vr": "OB", "BulkDataURI": f"{URL}/bulkdata/00431029"}
    plain = dataset_to_json(read(part))
    assert metadata["00080005"] == plain["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert {key: value for key, value in metadata.items() if "BulkDataURI" not in value} == {
        key: value for key, value in plain.items() if key not in ("7FE00010", "00431029")
    }


def test_threshold_is_on_the_value_length():
    part = data_file("CT_small.dcm")
    assert "InlineBinary" in instance_metadata(part, URL, bulk_data_threshold=2068)["00431029"]
    assert "BulkDataURI" in instance_metadata(part, URL, bulk_data_threshold=2067)["00431029"]
    # Pixel data is by reference whatever the threshold.
    assert "BulkDataURI" in instance_metadata(part, URL, bulk_data_threshold=10**9)["7FE00010"]


@pytest.mark.parametrize(
    ("name", "vr"),
    [("JPEG2000.dcm", "OB"), ("SC_rgb_rle_2frame.dcm", "OB"), ("MR_small_implicit.dcm", "OW"), ("rtdose.dcm", "OW")],
)
def test_pixel_data_of_any_encoding_is_by_reference(name, vr):
    assert instance_metadata(data_file(name), URL)["7FE00010"] == {
        "vr": vr,
        "BulkDataURI": f"{URL}/bulkdata/7FE00010",
    }


def test_float_pixel_data_is_by_reference():
    ds = Dataset()
    ds.Rows = ds.Columns = 2
    ds.add_new(0x7FE00008, "OF", b"\0" * 16)
    ds.add_new(0x7FE00009, "OD", b"\0" * 32)
    metadata = instance_metadata(part10(ds), URL)
    assert metadata["7FE00008"] == {"vr": "OF", "BulkDataURI": f"{URL}/bulkdata/7FE00008"}
    assert metadata["7FE00009"] == {"vr": "OD", "BulkDataURI": f"{URL}/bulkdata/7FE00009"}


def test_nested_bulk_data_uris_name_their_items():
    metadata = instance_metadata(nested_instance(), URL)
    outer = metadata[f"{CONTENT_SEQUENCE:08X}"]["Value"]
    inner = outer[1][f"{CONTENT_SEQUENCE:08X}"]["Value"]
    path = f"{CONTENT_SEQUENCE:08X}/1/{CONTENT_SEQUENCE:08X}/1/{ENCAPSULATED_DOCUMENT:08X}"
    assert inner[1]["00420011"] == {"vr": "OB", "BulkDataURI": f"{URL}/bulkdata/{path}"}
    assert inner[0]["00420011"] == {"vr": "OB", "InlineBinary": base64.b64encode(b"tiny").decode()}
    icon = metadata[f"{ICON_IMAGE_SEQUENCE:08X}"]["Value"][0]
    assert icon["7FE00010"] == {"vr": "OB", "BulkDataURI": f"{URL}/bulkdata/00880200/0/7FE00010"}
    assert metadata["00420011"] == {"vr": "OB", "BulkDataURI": f"{URL}/bulkdata/00420011"}
    assert metadata["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]}
    assert metadata["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}


def test_every_bulk_data_uri_resolves_to_the_value():
    part = nested_instance()

    def uris(node):
        if isinstance(node, dict):
            if "BulkDataURI" in node:
                yield node["BulkDataURI"]
            for value in node.values():
                yield from uris(value)
        elif isinstance(node, list):
            for value in node:
                yield from uris(value)

    found = {uri.removeprefix(f"{URL}/bulkdata/") for uri in uris(instance_metadata(part, URL))}
    assert found == set(NESTED_PATHS)
    for path, value in NESTED_PATHS.items():
        assert bulkdata_value(part, path) == value


def test_metadata_never_decodes_pixel_data(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(Dataset, "convert_pixel_data", refuse)
    monkeypatch.setattr("pydicom.pixels.utils.pixel_array", refuse)
    part = data_file("JPEG2000.dcm")
    assert "BulkDataURI" in instance_metadata(part, URL)["7FE00010"]
    assert b"<BulkData" in instance_metadata_xml(part, URL)


# --- XML --------------------------------------------------------------------------------------------------


def _attribute(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.find(f"n:DicomAttribute[@tag='{tag}']", NS)
    assert found is not None, tag
    return found


def test_xml_bulk_data_references():
    root = ET.fromstring(instance_metadata_xml(nested_instance(), URL))
    document = _attribute(root, "00420011")
    assert [child.tag for child in document] == [f"{{{NATIVE_DICOM_NS}}}BulkData"]
    assert document[0].attrib == {"uri": f"{URL}/bulkdata/00420011"}
    outer = _attribute(root, "0040A730").findall("n:Item", NS)
    inner = _attribute(outer[1], "0040A730").findall("n:Item", NS)
    assert _attribute(inner[0], "00420011").findtext("n:InlineBinary", None, NS) == base64.b64encode(b"tiny").decode()
    path = "0040A730/1/0040A730/1/00420011"
    assert _attribute(inner[1], "00420011").find("n:BulkData", NS).get("uri") == f"{URL}/bulkdata/{path}"
    icon = _attribute(root, "00880200").find("n:Item", NS)
    assert _attribute(icon, "7FE00010").find("n:BulkData", NS).get("uri") == f"{URL}/bulkdata/00880200/0/7FE00010"
    assert _attribute(root, "00080005").findtext("n:Value", None, NS) == "ISO_IR 192"


def test_xml_is_dataset_to_xml_but_for_bulk_data():
    part = data_file("CT_small.dcm")
    with_references = ET.fromstring(instance_metadata_xml(part, URL))
    inline = ET.fromstring(dataset_to_xml(read(part)))
    assert _attribute(with_references, "7FE00010").find("n:BulkData", NS).get("uri") == f"{URL}/bulkdata/7FE00010"
    for ours, theirs in zip(with_references, inline, strict=True):
        assert ours.attrib == theirs.attrib
        if ours.find("n:BulkData", NS) is None:
            assert ET.tostring(ours) == ET.tostring(theirs)


def test_dataset_to_xml_without_callback_is_unchanged():
    ds = read(data_file("CT_small.dcm"))
    assert b"<BulkData" not in dataset_to_xml(ds)
    assert dataset_to_xml(ds, lambda path, elem: None) == dataset_to_xml(ds)


def test_dataset_to_xml_callback_sees_paths():
    seen = []

    def record(path, elem):
        seen.append(path)
        return None

    dataset_to_xml(read(nested_instance()), record)
    assert sorted(seen, key=str) == sorted(
        [
            (ENCAPSULATED_DOCUMENT,),
            ((CONTENT_SEQUENCE, 1), (CONTENT_SEQUENCE, 0), ENCAPSULATED_DOCUMENT),
            ((CONTENT_SEQUENCE, 1), (CONTENT_SEQUENCE, 1), ENCAPSULATED_DOCUMENT),
            ((ICON_IMAGE_SEQUENCE, 0), PIXEL_DATA),
        ],
        key=str,
    )


# --- bulkdata_value ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "rtdose.dcm", "image_dfl.dcm"])
def test_native_pixel_data_as_stored(name):
    part = data_file(name)
    assert bulkdata_value(part, "7FE00010") == read(part).PixelData


def test_encapsulated_pixel_data_as_stored():
    part = data_file("SC_rgb_rle_2frame.dcm")
    value = bulkdata_value(part, "7fe00010")
    assert value == read(part).PixelData
    assert len(list(generate_frames(value, number_of_frames=2))) == 2


def test_private_binary_value():
    part = data_file("CT_small.dcm")
    assert bulkdata_value(part, "00431029") == read(part)[0x00431029].value


@pytest.mark.parametrize(
    "path",
    [
        "7FE00008",  # absent
        "00100010",  # present, but not binary
        "0040A730",  # a sequence, not a value
        "0040A730/2/0040A730/0/00420011",  # no such item
        "0040A730/1/0040A730/1/00420012",  # absent in that item
        "00420011/0/00420011",  # not a sequence
        "FFFFFFFF/0/00420011",
    ],
)
def test_well_formed_paths_naming_nothing(path):
    with pytest.raises(BulkDataNotFound) as info:
        bulkdata_value(nested_instance(), path)
    assert isinstance(info.value, KeyError)
    assert str(info.value) == f"the instance has no bulk data at '{path}'"


def test_malformed_path_is_a_value_error():
    with pytest.raises(ValueError, match="not an item index"):
        bulkdata_value(nested_instance(), "0040A730/one/00420011")
