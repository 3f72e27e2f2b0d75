"""DICOM JSON Model (PS3.18 Annex F): dataset conversion and a streaming array encoder."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pydicom import Dataset

from dicomrst.dicomweb.charset import UTF8_CHARSET

__all__ = ["UTF8_CHARSET", "dataset_to_json", "encode_json_array", "encode_json_texts"]

_SPECIFIC_CHARACTER_SET = "00080005"


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
    """The DICOM JSON object for `ds`; binary values inline as base64.

    An element whose value cannot be converted is logged by pydicom and left out,
    so one bad value never fails a whole response.
    """
    return _normalised(ds.to_json_dict(suppress_invalid_tags=True))


def encode_json_array(datasets: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """Stream a JSON array of `datasets` lazily, one item per chunk.

    The first chunk is yielded only once the first item exists, so pulling it surfaces an
    early failure of the source before any response header is sent. If the source raises,
    the exception propagates and no `]` is written: the client sees invalid JSON rather
    than a complete but silently short result.
    """
    prefix = b"["
    for item in datasets:
        yield prefix + json.dumps(item, ensure_ascii=False).encode("utf-8")
        prefix = b","
    yield b"[]" if prefix == b"[" else b"]"


def encode_json_texts(texts: Iterable[str]) -> Iterator[bytes]:
    """``encode_json_array`` for items already encoded as JSON text."""
    prefix = b"["
    for text in texts:
        yield prefix + text.encode("utf-8")
        prefix = b","
    yield b"[]" if prefix == b"[" else b"]"
