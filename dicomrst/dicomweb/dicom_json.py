"""DICOM JSON Model (PS3.18 Annex F): dataset conversion and a streaming array encoder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydicom import Dataset, config
from pydicom.dataelem import RawDataElement

from dicomrst.dicomweb.charset import UTF8_CHARSET
from dicomrst.dicomweb.encoded_json import ASCII_COMPATIBLE_CHARSETS, encoded_element_json, text_element_json

log = logging.getLogger(__name__)

__all__ = ["UTF8_CHARSET", "dataset_to_json", "encode_json_array", "encode_json_texts"]

_SPECIFIC_CHARACTER_SET = "00080005"
_CHARSET_TAG = 0x00080005
# One encoder for every item: json.dumps with any option builds a new one per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _normalised(json_dataset: dict[str, Any]) -> dict[str, Any]:
    """Attributes in ascending tag order (PS3.18 F.2: pydicom keeps the order they were added in,
    and a C-FIND answer or an added RetrieveURL is in no order), at every nesting level; and UTF-8
    declared, since the values were decoded by pydicom and the original character set no longer
    describes them."""
    if _SPECIFIC_CHARACTER_SET in json_dataset:
        json_dataset[_SPECIFIC_CHARACTER_SET] = {"vr": "CS", "Value": [UTF8_CHARSET]}
    for element in json_dataset.values():
        if element.get("vr") == "SQ" and "Value" in element:
            element["Value"] = [_normalised(item) for item in element["Value"]]
    # Keys are 8 upper-case hex digits, so their string order is their numeric order.
    return dict(sorted(json_dataset.items()))


def dataset_to_json(ds: Dataset) -> dict[str, Any]:
    """The DICOM JSON object for `ds`, as pydicom's ``to_json_dict`` makes it; binary values inline
    as base64. Plain elements still as read are written straight from their bytes (``encoded_json``).

    An element whose value cannot be converted is logged and left out, so one bad value never fails
    a whole response.
    """
    ascii_is_ascii = _reads_ascii_as_ascii(ds)
    json_dataset: dict[str, Any] = {}
    # values(), unlike iterating the dataset, leaves the elements as read.
    for element in ds.values():
        if isinstance(element, RawDataElement):
            json_element = encoded_element_json(element) if ascii_is_ascii else None
        else:
            json_element = text_element_json(element)
        if json_element is None:
            json_element = _converted_json(ds, element.tag)
        if json_element is not None:
            json_dataset[f"{element.tag:08X}"] = json_element
    return _normalised(json_dataset)


def _converted_json(ds: Dataset, tag: int) -> dict[str, Any] | None:
    # Strict reading, as to_json_dict(suppress_invalid_tags=True) does: a value pydicom finds invalid
    # raises here instead of being passed on.
    try:
        with config.strict_reading():
            return ds[tag].to_json_dict(None, 1024)
    except Exception as error:
        log.warning("attribute %08X left out of the DICOM JSON: %s", tag, error)
        return None


def _reads_ascii_as_ascii(ds: Dataset) -> bool:
    charset = ds.get_item(_CHARSET_TAG)
    if charset is None:
        return True
    value = charset.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").rstrip("\0 ")
    return isinstance(value, str) and value.strip() in ASCII_COMPATIBLE_CHARSETS


def encode_json_array(datasets: Iterable[dict[str, Any]], next_ready: Callable[[], bool] | None = None,
                      chunk_size: int = 16384) -> Iterator[bytes]:
    """Stream a JSON array of `datasets` lazily.

    Each item leaves in a chunk as soon as it is made, except that while ``next_ready`` says the
    next item is already at hand (no wait for it), items are sent together, up to about
    `chunk_size` bytes: fewer and larger writes, never an item held back while the source waits.

    The first chunk is yielded only once the first item exists, so pulling it surfaces an
    early failure of the source before any response header is sent. If the source raises,
    the exception propagates and no `]` is written: the client sees invalid JSON rather
    than a complete but silently short result.
    """
    prefix = b"["
    encode = _JSON_ENCODER.encode
    pending: list[bytes] = []
    size = 0
    for item in datasets:
        text = prefix + encode(item).encode("utf-8")
        prefix = b","
        pending.append(text)
        size += len(text)
        if next_ready is None or size >= chunk_size or not next_ready():
            yield b"".join(pending)
            pending, size = [], 0
    yield b"".join(pending) + (b"[]" if prefix == b"[" else b"]")


def encode_json_texts(texts: Iterable[str]) -> Iterator[bytes]:
    """``encode_json_array`` for items already encoded as JSON text."""
    prefix = b"["
    for text in texts:
        yield prefix + text.encode("utf-8")
        prefix = b","
    yield b"[]" if prefix == b"[" else b"]"
