"""A QIDO-RS query as a Study Root C-FIND identifier (PS3.4 C.4.1.1.3): return keys zero-length,
matching keys with their values, sequence keys with one item, Private Creators beside private keys."""
from __future__ import annotations

from typing import Any

from pydicom import Dataset, config
from pydicom.dataelem import DataElement

from dicomrst.dicomweb.charset import UTF8_CHARSET
from dicomrst.dicomweb.query import KeyPath, QidoQuery, is_private, is_private_creator, vr_of



def cfind_identifier(query: QidoQuery) -> Dataset:
    identifier = Dataset()
    for path in query.return_keys:
        _add_return_key(identifier, path)
    for key in query.matching:
        if key.value is not None:
            set_key(identifier, key.path, key.value)
        else:
            _add_return_key(identifier, key.path)  # universal match: keep a default's sequence item
    _add_private_creators(identifier)
    identifier.QueryRetrieveLevel = query.level.value
    if query.needs_utf8:
        # pydicom encodes the identifier's text values with the declared character set.
        identifier.SpecificCharacterSet = UTF8_CHARSET
    return identifier


def _item_for(ds: Dataset, path: KeyPath) -> Dataset:
    """The dataset holding the last tag of `path`; a sequence on the way gets one item."""
    for tag in path[:-1]:
        if tag not in ds or not ds[tag].value:
            ds[tag] = DataElement(tag, "SQ", [Dataset()])
        ds = ds[tag].value[0]
    return ds


def set_key(ds: Dataset, path: KeyPath, value: Any) -> None:
    """A key at ``path`` (through one item of each sequence on the way); None makes it a return key."""
    tag = path[-1]
    vr = vr_of(tag, matching=value is not None)
    empty: Any = [] if vr == "SQ" else None
    # Values were validated above; wildcards would trip pydicom's own value checks.
    _item_for(ds, path)[tag] = DataElement(tag, vr, empty if value is None else value, validation_mode=config.IGNORE)


def _add_return_key(ds: Dataset, path: KeyPath) -> None:
    if path[-1] not in _item_for(ds, path):
        set_key(ds, path, None)


def _add_private_creators(ds: Dataset) -> None:
    """Each private data element's block needs its Private Creator beside it (PS3.5 7.8.1)."""
    for element in list(ds):
        tag = int(element.tag)
        if is_private(tag) and not is_private_creator(tag):
            creator = (tag & 0xFFFF0000) | ((tag & 0xFF00) >> 8)
            if creator not in ds:
                set_key(ds, (creator,), None)
        elif element.VR == "SQ":
            for item in element.value:
                _add_private_creators(item)
