import base64
import io
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pynetdicom.dsutils import decode, encode

from dicomrst.dicomweb.dicom_xml import NATIVE_DICOM_NS, dataset_to_xml

NS = {"n": NATIVE_DICOM_NS}
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def _root(ds: Dataset) -> ET.Element:
    return ET.fromstring(dataset_to_xml(ds))


def _attr(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.find(f"n:DicomAttribute[@tag='{tag}']", NS)
    assert found is not None, tag
    return found


def _values(attribute: ET.Element) -> list[str]:
    values = attribute.findall("n:Value", NS)
    assert [v.get("number") for v in values] == [str(i) for i in range(1, len(values) + 1)]
    return [v.text or "" for v in values]


def _person_name(person: ET.Element) -> str:
    """Rebuild the DICOM PN string from its XML form."""
    groups = []
    for group_name in ("Alphabetic", "Ideographic", "Phonetic"):
        group = person.find(f"n:{group_name}", NS)
        parts = [] if group is None else [(group.findtext(f"n:{c}", "", NS)) for c in PN_COMPONENTS]
        groups.append("^".join(parts).rstrip("^"))
    return "=".join(groups).rstrip("=")


def test_document_shape():
    body = dataset_to_xml(Dataset())
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(body)
    assert root.tag == f"{{{NATIVE_DICOM_NS}}}NativeDicomModel"
    assert root.get(XML_SPACE) == "preserve"


def test_attribute_identity():
    ds = Dataset()
    ds.PatientID = "ID1"
    attribute = _attr(_root(ds), "00100020")
    assert attribute.attrib == {"tag": "00100020", "vr": "LO", "keyword": "PatientID"}
    assert _values(attribute) == ["ID1"]


def test_person_name_round_trips_all_groups():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Yamada^Tarou^^Dr^Jr=山田^太郎=やまだ^たろう"
    ds.ReferringPhysicianName = ["Doe^John", "", "Roe^Jane"]
    root = _root(_over_the_wire(ds))
    (person,) = _attr(root, "00100010").findall("n:PersonName", NS)
    assert person.get("number") == "1"
    assert person.findtext("n:Alphabetic/n:NamePrefix", None, NS) == "Dr"
    assert person.findtext("n:Ideographic/n:FamilyName", None, NS) == "山田"
    assert _person_name(person) == "Yamada^Tarou^^Dr^Jr=山田^太郎=やまだ^たろう"
    referring = _attr(root, "00080090").findall("n:PersonName", NS)
    assert [p.get("number") for p in referring] == ["1", "2", "3"]
    assert [_person_name(p) for p in referring] == ["Doe^John", "", "Roe^Jane"]
    assert _attr(root, "00100010").find("n:Value", NS) is None


def _over_the_wire(ds: Dataset) -> Dataset:
    return decode(io.BytesIO(encode(ds, True, True)), True, True)


def test_iso_ir_100_is_decoded_and_charset_declared_utf8():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds[0x00100010] = RawDataElement(Tag(0x00100010), "PN", 14, "Müller^Jürgen ".encode("latin-1"), 0, True, True)
    root = _root(_over_the_wire(ds))
    assert _person_name(_attr(root, "00100010").find("n:PersonName", NS)) == "Müller^Jürgen"
    assert _values(_attr(root, "00080005")) == ["ISO_IR 192"]


def test_multi_valued_attributes_keep_order_and_empty_values():
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]
    ds.PixelSpacing = ["0.5", "0.25"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameIncrementPointer = [0x00181063, 0x00181065]
    root = _root(ds)
    assert _values(_attr(root, "00080008")) == ["ORIGINAL", "", "AXIAL"]
    assert _values(_attr(root, "00280030")) == ["0.5", "0.25"]
    assert [float(v) for v in _values(_attr(root, "00200037"))] == [1, 0, 0, 0, 1, 0]
    assert _values(_attr(root, "00280009")) == ["00181063", "00181065"]
    assert _attr(root, "00280009").get("vr") == "AT"


def test_numbers():
    ds = Dataset()
    ds.Rows = 512
    ds.InstanceNumber = "7"
    ds.add_new(0x00189087, "FD", 1.5)  # DiffusionBValue
    root = _root(ds)
    assert _values(_attr(root, "00280010")) == ["512"]
    assert _values(_attr(root, "00200013")) == ["7"]
    assert float(_values(_attr(root, "00189087"))[0]) == 1.5


def test_sequences_nest_items():
    first = Dataset()
    first.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    first.ReferencedSOPInstanceUID = "1.2.3"
    nested = Dataset()
    nested.CodeValue = "T-D0050"
    first.ConceptNameCodeSequence = Sequence([nested])
    ds = Dataset()
    ds.ReferencedImageSequence = Sequence([first, Dataset()])
    ds.ReferencedStudySequence = Sequence([])
    root = _root(ds)
    sequence = _attr(root, "00081140")
    assert sequence.get("vr") == "SQ"
    items = sequence.findall("n:Item", NS)
    assert [item.get("number") for item in items] == ["1", "2"]
    assert _values(_attr(items[0], "00081155")) == ["1.2.3"]
    inner = _attr(items[0], "0040A043").find("n:Item", NS)
    assert _values(_attr(inner, "00080100")) == ["T-D0050"]
    assert list(items[1]) == []
    assert list(_attr(root, "00081110")) == []


def test_binary_is_inline_base64():
    ds = Dataset()
    data = bytes(range(256))
    ds.add_new(0x60003000, "OW", data)
    ds.add_new(0x00420011, "OB", b"")  # EncapsulatedDocument, empty
    root = _root(ds)
    overlay = _attr(root, "60003000")
    assert overlay.get("keyword") == "OverlayData"
    assert base64.b64decode(overlay.findtext("n:InlineBinary", None, NS)) == data
    assert list(_attr(root, "00420011")) == []


def test_empty_attribute_has_no_children():
    ds = Dataset()
    ds.add_new(0x00100010, "PN", None)
    ds.add_new(0x00100020, "LO", "")
    root = _root(ds)
    assert list(_attr(root, "00100010")) == []
    assert list(_attr(root, "00100020")) == []


def test_private_element_uses_private_creator_and_block_free_tag():
    ds = Dataset()
    ds.private_block(0x0009, "ACME 1.0", create=True).add_new(0x12, "LO", "secret")
    root = _root(ds)
    attributes = root.findall("n:DicomAttribute", NS)
    assert len(attributes) == 1  # the creator element itself is conveyed by privateCreator
    assert attributes[0].attrib == {"tag": "00090012", "vr": "LO", "privateCreator": "ACME 1.0"}
    assert _values(attributes[0]) == ["secret"]


def test_invalid_values_are_not_fatal():
    ds = Dataset()
    ds.PatientID = "ID1"
    ds[0x00200013] = RawDataElement(Tag(0x00200013), "IS", 3, b"abc", 0, True, True)
    ds[0x00280010] = RawDataElement(Tag(0x00280010), "US", 3, b"abc", 0, True, True)  # odd length
    item = Dataset()
    item[0x00280011] = RawDataElement(Tag(0x00280011), "US", 1, b"x", 0, True, True)
    item.StudyInstanceUID = "1.2"
    ds.ReferencedStudySequence = Sequence([item])
    root = _root(ds)
    assert _values(_attr(root, "00200013")) == ["abc"]  # text in XML: kept as read
    assert root.find("n:DicomAttribute[@tag='00280010']", NS) is None  # unreadable: dropped
    assert _values(_attr(root, "00100020")) == ["ID1"]
    inner = _attr(root, "00081110").find("n:Item", NS)
    assert inner.find("n:DicomAttribute[@tag='00280011']", NS) is None
    assert _values(_attr(inner, "0020000D")) == ["1.2"]


def test_characters_xml_cannot_carry_do_not_break_the_document():
    ds = Dataset()
    ds.StudyDescription = "bad\x00\x01value & <tag>"
    value = _values(_attr(_root(ds), "00081030"))[0]
    assert value == "bad\ufffd\ufffdvalue & <tag>"


def test_attributes_are_in_tag_order():
    ds = Dataset()
    ds.PatientID = "1"
    ds.Modality = "CT"
    ds.StudyInstanceUID = "1.2"
    tags = [a.get("tag") for a in _root(ds).findall("n:DicomAttribute", NS)]
    assert tags == sorted(tags)


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\"), max_size=40
).map(str.strip)


@given(st.lists(_TEXT, min_size=1, max_size=4), _TEXT)
def test_text_values_round_trip(values, description):
    ds = Dataset()
    ds.add_new(0x00081030, "LO", description)
    ds.add_new(0x00104000, "LT", description)
    ds.add_new(0x00081090, "LO", values)  # ManufacturerModelName, VM as given
    root = _root(ds)
    assert _values(_attr(root, "00081030")) == ([description] if description else [])
    expected = values if len(values) > 1 else ([values[0]] if values[0] else [])
    assert _values(_attr(root, "00081090")) == expected
