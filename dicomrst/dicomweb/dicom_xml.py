"""Native DICOM Model (PS3.19 Annex A) XML encoding of a dataset."""

from __future__ import annotations

import base64
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.datadict import keyword_for_tag
from pydicom.tag import BaseTag, Tag

from dicomrst.vrs import BINARY_VRS
from .charset import UTF8_CHARSET

__all__ = ["NATIVE_DICOM_NS", "BulkDataUri", "ElementPath", "dataset_to_xml"]

log = logging.getLogger(__name__)

NATIVE_DICOM_NS = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_XML_NS = "http://www.w3.org/XML/1998/namespace"

_SPECIFIC_CHARACTER_SET = 0x00080005
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
# Characters XML 1.0 cannot carry at all; a stray one must not make the document unparsable.
_NON_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# Where an element sits in an instance: a (sequence tag, 0-based item index) pair for each
# enclosing sequence item, outermost first, then the element's own tag.
ElementPath = tuple[int | tuple[int, int], ...]
# Given a binary element and its path, the URI its value can be fetched from, or None to inline it.
BulkDataUri = Callable[[ElementPath, DataElement], str | None]


def _text(value: Any) -> str:
    return _NON_XML_CHARS.sub("\ufffd", str(value))


def _values(elem: DataElement) -> list[Any]:
    if elem.VM == 0:
        return []
    return list(elem.value) if elem.VM > 1 else [elem.value]


def _vr(elem: DataElement) -> str:
    # An ambiguous VR ("US or SS", "OB or OW") left unresolved by pydicom: the first is the
    # usual encoding, and the schema needs a two-letter VR.
    return elem.VR.split(" or ")[0]


def _add_person_name(parent: ET.Element, number: int, name: Any) -> None:
    person = ET.SubElement(parent, "PersonName", number=str(number))
    for group_name, group in zip(_PN_GROUPS, name.components):
        if not group:
            continue
        group_elem = ET.SubElement(person, group_name)
        for component_name, component in zip(_PN_COMPONENTS, group.split("^")):
            if component:
                ET.SubElement(group_elem, component_name).text = _text(component)


def _add_binary(attribute: ET.Element, elem: DataElement, path: ElementPath, bulk_data_uri: BulkDataUri | None) -> None:
    if not elem.value:
        return
    uri = None if bulk_data_uri is None else bulk_data_uri(path, elem)
    if uri is None:
        ET.SubElement(attribute, "InlineBinary").text = base64.b64encode(elem.value).decode("ascii")
    else:
        ET.SubElement(attribute, "BulkData", uri=uri)


def _add_values(
    attribute: ET.Element, elem: DataElement, vr: str, path: ElementPath, bulk_data_uri: BulkDataUri | None
) -> None:
    if vr == "SQ":
        for index, item in enumerate(elem.value):
            item_elem = ET.SubElement(attribute, "Item", number=str(index + 1))
            _add_dataset(item_elem, item, (*path[:-1], (int(elem.tag), index)), bulk_data_uri)
    elif vr in BINARY_VRS:
        _add_binary(attribute, elem, path, bulk_data_uri)
    elif vr == "PN":
        for number, name in enumerate(_values(elem), 1):
            _add_person_name(attribute, number, name)
    else:
        for number, value in enumerate(_values(elem), 1):
            value_elem = ET.SubElement(attribute, "Value", number=str(number))
            if value is None or value == "":
                continue  # an empty value in a multi-valued attribute: <Value number="n"/>
            value_elem.text = f"{int(BaseTag(value)):08X}" if vr == "AT" else _text(value)


def _private_creator(ds: Dataset, tag: BaseTag) -> str | None:
    if not tag.is_private or tag.element < 0x1000:
        return None
    creator = ds.get(Tag(tag.group, tag.element >> 8))
    return str(creator.value) if creator is not None and creator.value else None


def _attribute(ds: Dataset, elem: DataElement, prefix: ElementPath, bulk_data_uri: BulkDataUri | None) -> ET.Element:
    tag = elem.tag
    vr = _vr(elem)
    attrs = {"tag": f"{int(tag):08X}", "vr": vr}
    creator = _private_creator(ds, tag)
    if creator is not None:
        # PS3.19 A.1.5: the block is implied by privateCreator, so the tag is written gggg00ee.
        attrs["tag"] = f"{tag.group:04X}00{tag.element & 0xFF:02X}"
        attrs["privateCreator"] = _text(creator)
    elif keyword := keyword_for_tag(tag):  # unlike elem.keyword, also names repeating groups
        attrs["keyword"] = keyword
    attribute = ET.Element("DicomAttribute", attrs)
    if tag == _SPECIFIC_CHARACTER_SET:
        # Values are decoded and re-encoded as UTF-8, whatever the source character set was.
        ET.SubElement(attribute, "Value", number="1").text = UTF8_CHARSET
    else:
        _add_values(attribute, elem, vr, (*prefix, int(tag)), bulk_data_uri)
    return attribute


def _is_omitted(tag: BaseTag) -> bool:
    # Group lengths are excluded by PS3.19 A.1. Private creators are conveyed by the
    # privateCreator attribute instead, and their gggg00ee form would collide with the
    # block-stripped tags of the elements they reserve.
    return tag.element == 0 or tag.is_private_creator


def _add_dataset(parent: ET.Element, ds: Dataset, prefix: ElementPath, bulk_data_uri: BulkDataUri | None) -> None:
    for tag in sorted(ds.keys()):
        if _is_omitted(tag):
            continue
        try:
            attribute = _attribute(ds, ds[tag], prefix, bulk_data_uri)
        except Exception as exc:
            log.warning("dropping element %08X from XML: %s", int(tag), exc)
            continue
        parent.append(attribute)


def dataset_to_xml(ds: Dataset, bulk_data_uri: BulkDataUri | None = None) -> bytes:
    """The Native DICOM Model document for `ds` as UTF-8 bytes with an XML declaration.

    Binary values are inline (base64), except where `bulk_data_uri` gives a URI for one: that
    value becomes `<BulkData uri="..."/>`. A value pydicom reads leniently (e.g. IS "abc") is
    written as the text it has; an element it cannot read at all is logged and left out.
    """
    root = ET.Element("NativeDicomModel", {"xmlns": NATIVE_DICOM_NS, f"{{{_XML_NS}}}space": "preserve"})
    _add_dataset(root, ds, (), bulk_data_uri)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
