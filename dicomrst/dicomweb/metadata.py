"""WADO-RS metadata with Bulk Data URIs (PS3.18 8.7.3.3, 10.4.1.1.2, F.2.6) and the bulk data
those URIs name.

A bulk data URI is `{instance_url}/bulkdata/{path}`, the path naming the element: `7FE00010` at the
top level, `{sequence tag}/{0-based item index}/.../{tag}` inside sequence items, at any depth.

The metadata describes the pixels as the gateway sends them decoded (frames as
application/octet-stream, instances transcoded to a native syntax): a YCbCr colour image stored
compressed is described as the RGB, colour-by-pixel image it decodes to (see
frames.decoded_colour_attributes). Pixel data sent as stored is described as stored.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset, config
from pydicom.dataelem import DataElement

from dicomrst.vrs import BINARY_VRS
from dicomrst.messages import shown
from .charset import UTF8_CHARSET
from .frames import decoded_colour_attributes
from .part10 import PIXEL_DATA_TAGS, read_instance
from .dicom_xml import BulkDataUri, ElementPath, dataset_to_xml

__all__ = [
    "MAX_NESTING",
    "BulkDataNotFound",
    "BulkDataPathError",
    "bulkdata_path",
    "bulkdata_uri",
    "bulkdata_value",
    "INSTANCE_URL_PLACEHOLDER",
    "instance_metadata",
    "instance_metadata_xml",
    "kept_metadata_document",
    "parse_bulkdata_path",
]

log = logging.getLogger(__name__)

# Stands for an instance's URL in a metadata document kept before the URL of a request is known.
INSTANCE_URL_PLACEHOLDER = "urn:dicomrst:instance-url"

_SPECIFIC_CHARACTER_SET = 0x00080005
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_ITEM_INDEX = re.compile(r"[0-9]{1,9}")
# Real instances nest a handful of levels; the bound keeps a hostile path cheap to refuse.
MAX_NESTING = 32


class BulkDataPathError(ValueError):
    """A bulk data path that is not of the form `TAG` or `SEQTAG/INDEX/.../TAG` (answer 400)."""


class BulkDataNotFound(KeyError):
    """A well-formed bulk data path that names no binary element of the instance (answer 404)."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument: quotes would reach the response body.
        return str(self.args[0]) if self.args else ""


def bulkdata_path(element_path: Sequence[int | tuple[int, int]]) -> str:
    """The path part of a bulk data URI: `(0x00400275, 0), 0x00081150` -> `00400275/0/00081150`.

    `element_path` is a (sequence tag, 0-based item index) pair for each enclosing item,
    outermost first, then the element's tag.
    """
    *items, tag = element_path
    if not isinstance(tag, int) or not all(isinstance(item, tuple) for item in items):
        raise TypeError("an element path is (sequence tag, item index) pairs followed by a tag")
    segments = [f"{int(sequence):08X}/{int(index)}" for sequence, index in items]  # type: ignore[misc]
    return "/".join([*segments, f"{int(tag):08X}"])


def bulkdata_uri(instance_url: str, element_path: Sequence[int | tuple[int, int]]) -> str:
    """`{instance_url}/bulkdata/{path}` for the element at `element_path`."""
    return f"{instance_url.rstrip('/')}/bulkdata/{bulkdata_path(element_path)}"


def parse_bulkdata_path(path: str) -> ElementPath:
    """The element path a bulk data URI's path names; the inverse of `bulkdata_path`."""
    segments = path.split("/")
    if len(segments) % 2 == 0 or len(segments) > 2 * MAX_NESTING + 1:
        raise BulkDataPathError(f"bulk data path {shown(path, 40)} is not TAG or SEQTAG/INDEX/.../TAG")
    tags = segments[0::2]
    indexes = segments[1::2]
    for tag in tags:
        if _TAG.fullmatch(tag) is None:
            raise BulkDataPathError(f"{shown(tag, 40)} in the bulk data path is not an 8-digit hex tag")
    for index in indexes:
        if _ITEM_INDEX.fullmatch(index) is None:
            raise BulkDataPathError(f"{shown(index, 40)} in the bulk data path is not an item index")
    items = tuple((int(tag, 16), int(index)) for tag, index in zip(tags[:-1], indexes, strict=True))
    return (*items, int(tags[-1], 16))


def _vr(elem: DataElement) -> str:
    # An ambiguous VR pydicom left unresolved: the first is the usual encoding.
    return str(elem.VR).split(" or ")[0]


def _bulk_data_uri(instance_url: str, threshold: int) -> BulkDataUri:
    def uri(path: ElementPath, elem: DataElement) -> str | None:
        # Pixel data goes by reference whatever its size: metadata never carries an image.
        if elem.tag in PIXEL_DATA_TAGS or len(elem.value) > threshold:
            return bulkdata_uri(instance_url, path)
        return None

    return uri


def _json_element(elem: DataElement, path: ElementPath, bulk_data_uri: BulkDataUri) -> dict[str, Any]:
    if elem.tag == _SPECIFIC_CHARACTER_SET:
        # Values are decoded by pydicom and sent as UTF-8, whatever the stored character set.
        return {"vr": "CS", "Value": [UTF8_CHARSET]}
    vr = _vr(elem)
    if vr == "SQ":
        items = [
            _json_dataset(item, (*path[:-1], (int(elem.tag), index)), bulk_data_uri)
            for index, item in enumerate(elem.value)
        ]
        return {"vr": "SQ", "Value": items}
    if vr in BINARY_VRS and not elem.is_empty:
        uri = bulk_data_uri(path, elem)
        if uri is not None:
            return {"vr": vr, "BulkDataURI": uri}
    return elem.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=0)


def _json_dataset(ds: Dataset, prefix: ElementPath, bulk_data_uri: BulkDataUri) -> dict[str, Any]:
    json_dataset: dict[str, Any] = {}
    for tag in ds.keys():
        try:
            json_dataset[f"{int(tag):08X}"] = _json_element(ds[tag], (*prefix, int(tag)), bulk_data_uri)
        except Exception as exc:
            log.warning("dropping element %08X from JSON metadata: %s", int(tag), exc)
    return json_dataset


def _as_served(part10: bytes) -> Dataset:
    """The instance's dataset, its Image Pixel attributes describing the pixels as the gateway
    decodes them: pydicom converts YCbCr to RGB, so a viewer told YBR_FULL_422 would convert twice."""
    ds = read_instance(part10)
    for keyword, value in decoded_colour_attributes(ds).items():
        setattr(ds, keyword, value)
    return ds


def instance_metadata(part10: bytes, instance_url: str, bulk_data_threshold: int = 1024) -> dict[str, Any]:
    """The DICOM JSON metadata of one instance (PS3.18 F.2), bulk data by reference.

    Pixel data of any kind, and every other binary value longer than `bulk_data_threshold` bytes,
    becomes a BulkDataURI under `instance_url`. Only a compressed colour image that is not RGB
    already has its first frame decoded, to describe its colour as decoded frames carry it.
    """
    ds = _as_served(part10)
    # Strict reading makes pydicom raise on an invalid value, which drops that element only.
    with config.strict_reading():
        return _json_dataset(ds, (), _bulk_data_uri(instance_url, bulk_data_threshold))


def kept_metadata_document(part10: bytes) -> str | None:
    """An instance's metadata as JSON text to keep (its URL ``INSTANCE_URL_PLACEHOLDER``), or None if it
    cannot be computed: the request that needs it then computes it again and reports why."""
    try:
        document = instance_metadata(part10, INSTANCE_URL_PLACEHOLDER)
    except Exception:
        return None
    return json.dumps(document, ensure_ascii=False)


def instance_metadata_xml(part10: bytes, instance_url: str, bulk_data_threshold: int = 1024) -> bytes:
    """`instance_metadata` as a Native DICOM Model document (PS3.19 A.1), `<BulkData uri=.../>`."""
    ds = _as_served(part10)
    return dataset_to_xml(ds, _bulk_data_uri(instance_url, bulk_data_threshold))


def _find(ds: Dataset, element_path: ElementPath, shown: str) -> DataElement:
    not_found = BulkDataNotFound(f"the instance has no bulk data at {shown}")
    *items, tag = element_path
    current = ds
    for sequence_tag, index in items:  # type: ignore[misc]
        if sequence_tag not in current:
            raise not_found
        sequence = current[sequence_tag]
        if sequence.VR != "SQ" or index >= len(sequence.value):
            raise not_found
        current = sequence.value[index]
    if tag not in current or _vr(current[tag]) not in BINARY_VRS:
        raise not_found
    return current[tag]


def bulkdata_value(part10: bytes, path: str) -> bytes:
    """The value bytes, as stored, of the binary element `path` names (e.g. `00400275/0/00081150`).

    Encapsulated Pixel Data comes as its encapsulated value. Raises BulkDataPathError (a
    ValueError) for a malformed path and BulkDataNotFound (a KeyError) for one naming nothing.
    """
    element_path = parse_bulkdata_path(path)
    outermost = element_path[0]
    top_tag = outermost[0] if isinstance(outermost, tuple) else outermost
    # Only the outermost element is parsed; the rest of the instance is skipped over.
    ds = read_instance(part10, specific_tags=[top_tag])
    value = _find(ds, element_path, shown(path, 40)).value
    return bytes(value) if value is not None else b""
