"""QIDO-RS query parameters -> Study Root C-FIND identifier (PS3.18 8.3.4 and 10.6).

Policy where the standard leaves room (each answers 400 via QueryError):
- unknown parameter names and unknown attributes are rejected rather than ignored, so a
  typo never silently widens a search; `accept` and `charset` (PS3.18 8.3.3) are content
  negotiation parameters that the web layer handles, and are skipped here;
- private attributes are given by tag (``00091001``; PS3.18 8.3.4.1): as return keys, or matched on
  with the text given (their VR is unknown without a private dictionary, so they match as LO does).
  The identifier then also carries their Private Creator element (``00090010``), which the client may
  match on too, so that the PACS can tell whose block it is (PS3.5 7.8.1);
- every matching attribute may be given once; UID list matching is the only multi-value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.valuerep import STR_VR_REGEXES, validate_value

from dicomrst.vrs import BINARY_INT_VRS, SINGLE_VALUED_TEXT_VRS, WILDCARD_VRS

from .uids import is_valid_uid
from .qido_attributes import (
    INSTANCE_ALL,
    INSTANCE_DEFAULTS,
    SERIES_ALL,
    SERIES_DEFAULT_SEQUENCES,
    SERIES_DEFAULTS,
    STUDY_ALL,
    STUDY_DEFAULTS,
)

__all__ = [
    "CONTENT_NEGOTIATION_PARAMETERS",
    "KeyPath",
    "MatchingKey",
    "QidoQuery",
    "QueryError",
    "QueryLevel",
    "default_return_keywords",
    "is_private",
    "is_private_creator",
    "parse_qido_query",
    "vr_of",
]

CONTENT_NEGOTIATION_PARAMETERS = frozenset({"accept", "charset"})

_STUDY_UID = 0x0020000D
_SERIES_UID = 0x0020000E
_SOP_UID = 0x00080018
_QUERY_RETRIEVE_LEVEL = 0x00080052
_SPECIFIC_CHARACTER_SET = 0x00080005
_RESERVED = {_QUERY_RETRIEVE_LEVEL: "QueryRetrieveLevel", _SPECIFIC_CHARACTER_SET: "SpecificCharacterSet"}

# Text VRs where a backslash is a character rather than a value delimiter.

_HEX_TAG_RE = re.compile(r"[0-9A-Fa-f]{8}")
_KEYWORD_RE = re.compile(r"[A-Z][A-Za-z0-9]*")
_CS_QUERY_RE = re.compile(r"[A-Z0-9 _*?]{1,16}")
# Bounded: int() refuses very long digit strings with a ValueError of its own.
_INT_RE = re.compile(r"[+-]?[0-9]{1,20}")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

_FORMATS = {
    "DA": "YYYYMMDD",
    "TM": "HH[MM[SS[.FFFFFF]]]",
    "DT": "YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][+/-ZZXX]",
}


class QueryLevel(enum.Enum):
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


class QueryError(ValueError):
    """A query the gateway refuses; the message is the 400 body and names the parameter."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class MatchingKey:
    """One attribute the client matches on: its key path (a sequence's attribute is two tags), and the
    validated value (a string, a number, or a list for UID list matching); None matches any value."""

    path: KeyPath
    value: Any


@dataclass(frozen=True)
class QidoQuery:
    """A QIDO-RS search as DICOMweb states it (PS3.18 8.3.4): what a backend needs to answer it, in no
    protocol's shape. The DIMSE backend turns it into a C-FIND identifier; another backend can match
    and page in its own way. The UIDs of the resource path are matching keys like any other."""

    level: QueryLevel
    matching: tuple[MatchingKey, ...]
    # The attributes to return: the defaults of PS3.18 tables 10.6.3-3 to -5 and the includefields.
    return_keys: tuple[KeyPath, ...]
    include_all: bool
    limit: int | None
    offset: int
    fuzzy_matching: bool

    @property
    def needs_utf8(self) -> bool:
        """Whether a matching value holds characters outside the default repertoire."""
        return any(isinstance(key.value, str) and not key.value.isascii() for key in self.matching)


KeyPath = tuple[int, ...]


def _shown(text: str) -> str:
    # Echo client input in messages, but never unboundedly.
    return repr(text if len(text) <= 64 else text[:61] + "...")


def _bad(parameter: str, reason: str) -> QueryError:
    return QueryError(f"query parameter {_shown(parameter)}: {reason}", parameter)


def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"


def is_private(tag: int) -> bool:
    return bool((tag >> 16) % 2)


def is_private_creator(tag: int) -> bool:
    return is_private(tag) and 0x0010 <= tag & 0xFFFF <= 0x00FF


def vr_of(tag: int, matching: bool = False) -> str:
    """The VR a key is sent with: the dictionary's (the first reading of an ambiguous one), and for a
    private attribute LO (creator, or matched on) or UN."""
    return _vr(tag, matching)


def _vr(tag: int, matching: bool = False) -> str:
    if is_private(tag):
        # A Private Creator is LO (PS3.5 7.8.1); a private data element's VR is the creator's secret:
        # UN as a return key, and LO, the text it was given as, when matched on.
        return "LO" if matching or is_private_creator(tag) else "UN"
    # Ambiguous VRs ("US or SS") only occur for pixel-related attributes; the first reading
    # is the common one and is good enough for a universal return key.
    return dictionary_VR(tag).split(" or ")[0]


def _resolve_tag(parameter: str, attribute_id: str) -> int:
    if _HEX_TAG_RE.fullmatch(attribute_id):
        tag = int(attribute_id, 16)
    else:
        # The pattern check matters: pydicom's keyword table maps "" to a real tag.
        found = tag_for_keyword(attribute_id) if _KEYWORD_RE.fullmatch(attribute_id) else None
        if found is None:
            raise _bad(parameter, f"unknown attribute {_shown(attribute_id)}")
        tag = found
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2:
        # PS3.5 7.8.1: odd groups from 0009; elements 0010-00FF are creators, 1000-FFFF their data.
        if group < 0x0009 or group == 0xFFFF or element < 0x0010 or 0x0100 <= element < 0x1000:
            raise _bad(parameter, f"{_shown(attribute_id)} is not a queryable attribute")
        return tag
    if group < 0x0008 or element == 0:
        raise _bad(parameter, f"{_shown(attribute_id)} is not a queryable attribute")
    try:
        dictionary_VR(tag)
    except KeyError:
        raise _bad(parameter, f"unknown attribute {_shown(attribute_id)}") from None
    return tag


def _resolve_path(parameter: str, attribute: str) -> KeyPath:
    """`Keyword`, `8-hex tag` or a dotted sequence path of them -> tags; all but the last are SQ."""
    path = tuple(_resolve_tag(parameter, part) for part in attribute.split("."))
    for tag in path[:-1]:
        if _vr(tag) != "SQ":
            raise _bad(parameter, f"{_name(tag)} is not a sequence")
    return path


# Pixel data and other bulk values (PS3.18 8.3.4.6 returns attributes, not bulk data): a PACS asked for
# them as C-FIND return keys may read every image to answer, or choke; no search returns them.
_BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})


def _check_not_bulk(parameter: str, path: KeyPath) -> None:
    if not is_private(path[-1]) and _vr(path[-1]) in _BULK_VRS:
        raise _bad(parameter, f"{_name(path[-1])} is bulk data, which a search does not return; "
                              "retrieve it with WADO-RS")


def _check_level(parameter: str, path: KeyPath, level: QueryLevel) -> None:
    # A unique key below the query level is meaningless in a hierarchical C-FIND.
    below = {QueryLevel.STUDY: {_SERIES_UID, _SOP_UID}, QueryLevel.SERIES: {_SOP_UID}}.get(level, set())
    if path[0] in below:
        raise _bad(parameter, f"{_name(path[0])} cannot be used in a {level.value.lower()}-level search")


def _uid_list(parameter: str, raw: str) -> str | list[str]:
    uids = raw.split(",")
    for uid in uids:
        if not is_valid_uid(uid):
            raise _bad(parameter, f"{_shown(uid)} is not a valid UID")
    # Several UIDs become a multi-valued key: DICOM list of UID matching.
    return uids if len(uids) > 1 else uids[0]


def _wildcard_value(parameter: str, vr: str, raw: str) -> str:
    if "\\" in raw and vr not in SINGLE_VALUED_TEXT_VRS:
        raise _bad(parameter, "only a single value is allowed")
    if vr == "CS":
        if _CS_QUERY_RE.fullmatch(raw) is None:
            raise _bad(parameter, f"{_shown(raw)} is not a valid code string (A-Z, 0-9, space, _; at most 16)")
        return raw
    try:
        validate_value(vr, raw, config.RAISE)
    except ValueError:
        raise _bad(parameter, f"{_shown(raw)} is not a valid {vr} value") from None
    return raw


def _validated(parameter: str, vr: str, value: Any) -> Any:
    try:
        validate_value(vr, value, config.RAISE)  # pydicom's length, character and range rules
    except ValueError:
        raise _bad(parameter, f"{_shown(str(value))} is not a valid {vr} value") from None
    return value


def _exact_value(parameter: str, vr: str, raw: str) -> Any:
    """Value for a VR without wildcard matching: UIDs, dates/times, numbers."""
    if "*" in raw or "?" in raw:
        raise _bad(parameter, f"wildcards are not allowed for VR {vr}")
    if not raw.isascii():  # also keeps non-ASCII digits out of the \\d of pydicom's regexes
        raise _bad(parameter, f"{_shown(raw)} is not a valid {vr} value")
    if vr == "UI":
        return _uid_list(parameter, raw)
    if vr in _FORMATS:
        if STR_VR_REGEXES[vr].match(raw) is None:
            expected = f"expected {_FORMATS[vr]} or a range A-B, A- or -B"
            raise _bad(parameter, f"{_shown(raw)} is not a valid {vr} value; {expected}")
        return raw
    if vr in ("AS", "DS", "IS"):  # string-encoded: sent as given
        return _validated(parameter, vr, raw)
    if vr in BINARY_INT_VRS and _INT_RE.fullmatch(raw):
        return _validated(parameter, vr, int(raw))
    if vr in ("FL", "FD") and _FLOAT_RE.fullmatch(raw):
        return float(raw)
    if vr in BINARY_INT_VRS or vr in ("FL", "FD"):
        raise _bad(parameter, f"{_shown(raw)} is not a valid {vr} value")
    raise _bad(parameter, f"matching on an attribute with VR {vr} is not supported")


def _match_value(parameter: str, vr: str, raw: str) -> Any:
    """The C-FIND key value for one query value; None means universal matching."""
    if raw == "":
        return None
    if _CONTROL_RE.search(raw):
        raise _bad(parameter, "control characters are not allowed")
    if vr in WILDCARD_VRS:
        return _wildcard_value(parameter, vr, raw)
    if raw == "*":
        return None  # a lone `*` means "any value" whatever the VR
    return _exact_value(parameter, vr, raw)


def _paths_for(keywords: Iterable[str]) -> list[KeyPath]:
    paths: list[KeyPath] = []
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        paths.append((tag,))
        for sub_keyword in SERIES_DEFAULT_SEQUENCES.get(keyword, ()):
            sub_tag = tag_for_keyword(sub_keyword)
            assert sub_tag is not None, sub_keyword
            paths.append((tag, sub_tag))
    return paths


def _levels_returned(level: QueryLevel, study_scoped: bool, series_scoped: bool) -> list[QueryLevel]:
    # PS3.18 10.6.3.3: a search not scoped by a parent UID also returns the parent's defaults.
    levels = []
    if level is QueryLevel.STUDY or not study_scoped:
        levels.append(QueryLevel.STUDY)
    if level is QueryLevel.SERIES or (level is QueryLevel.IMAGE and not series_scoped):
        levels.append(QueryLevel.SERIES)
    if level is QueryLevel.IMAGE:
        levels.append(QueryLevel.IMAGE)
    return levels


_DEFAULTS = {QueryLevel.STUDY: STUDY_DEFAULTS, QueryLevel.SERIES: SERIES_DEFAULTS, QueryLevel.IMAGE: INSTANCE_DEFAULTS}
_ALL = {QueryLevel.STUDY: STUDY_ALL, QueryLevel.SERIES: SERIES_ALL, QueryLevel.IMAGE: INSTANCE_ALL}


def _unique(keywords: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(keywords))


def default_return_keywords(level: QueryLevel, study_scoped: bool, series_scoped: bool) -> list[str]:
    """Keywords of the default return keys (PS3.18 Tables 10.6.3-3..5) for a search.

    Always includes the UIDs of the query level and its parents, which C-FIND needs as keys.
    """
    keywords: list[str] = []
    for returned in _levels_returned(level, study_scoped, series_scoped):
        keywords += _DEFAULTS[returned]
        if returned is QueryLevel.SERIES:
            keywords += SERIES_DEFAULT_SEQUENCES
    keywords.append("StudyInstanceUID")
    if level is not QueryLevel.STUDY:
        keywords.append("SeriesInstanceUID")
    return _unique(keywords)


def _all_keywords(level: QueryLevel, study_scoped: bool, series_scoped: bool) -> list[str]:
    return _unique(k for returned in _levels_returned(level, study_scoped, series_scoped) for k in _ALL[returned])


def _check_scope(level: QueryLevel, study_uid: str | None, series_uid: str | None) -> None:
    if (level is QueryLevel.STUDY and study_uid is not None) or (
        series_uid is not None and (level is not QueryLevel.IMAGE or study_uid is None)
    ):
        # No QIDO-RS resource has this shape: a routing bug, not a client error.
        raise ValueError(f"no QIDO-RS resource for level {level.value} with study={study_uid} series={series_uid}")
    for name, uid in (("study", study_uid), ("series", series_uid)):
        if uid is not None and not is_valid_uid(uid):
            raise QueryError(f"invalid {name} UID in the request path: {_shown(uid)}", name)


def _parse_uint(parameter: str, raw: str, minimum: int) -> int:
    if re.fullmatch(r"[0-9]{1,18}", raw) is None or int(raw) < minimum:
        raise _bad(parameter, f"{_shown(raw)} is not an integer >= {minimum}")
    return int(raw)


def _fuzzy_matching(raw: str) -> bool:
    # PS3.18 8.3.4.1: a hint the origin may ignore, so no value of it is ever an error; only "true"
    # asks for fuzzy matching.
    return raw.strip().lower() == "true"


@dataclass
class _Collected:
    include_all: bool = False
    includes: list[KeyPath] = field(default_factory=list)
    matches: dict[KeyPath, tuple[str, Any]] = field(default_factory=dict)  # path -> (parameter, value)
    controls: dict[str, Any] = field(default_factory=dict)  # limit, offset, fuzzymatching


def _collect(level: QueryLevel, params: Iterable[tuple[str, str]]) -> _Collected:
    collected = _Collected()
    parsers = {
        "limit": lambda raw: _parse_uint("limit", raw, 1),
        "offset": lambda raw: _parse_uint("offset", raw, 0),
        "fuzzymatching": _fuzzy_matching,
    }
    for key, raw in params:
        if key in parsers:
            if key in collected.controls and key != "fuzzymatching":
                raise _bad(key, "given more than once")
            collected.controls[key] = parsers[key](raw)
        elif key == "includefield":
            for attribute in filter(None, raw.split(",")):
                if attribute == "all":
                    collected.include_all = True
                    continue
                path = _resolve_path(key, attribute)
                _check_level(key, path, level)
                _check_not_bulk(key, path)
                collected.includes.append(path)
        elif key in CONTENT_NEGOTIATION_PARAMETERS:
            continue
        else:
            path = _resolve_path(key, key)
            _check_level(key, path, level)
            if path[0] in _RESERVED and len(path) == 1:
                raise _bad(key, f"{_RESERVED[path[0]]} is set by the gateway")
            if path in collected.matches:
                raise _bad(key, "the same attribute is given more than once")
            vr = _vr(path[-1], matching=True)
            if vr == "SQ":
                if raw:
                    raise _bad(key, "a sequence matches through its items: use Sequence.Attribute")
            collected.matches[path] = (key, None if vr == "SQ" else _match_value(key, vr, raw))
    return collected


def _check_path_uid(matches: dict[KeyPath, tuple[str, Any]], tag: int, path_uid: str | None) -> None:
    if path_uid is None or (tag,) not in matches:
        return
    key, value = matches[(tag,)]
    if value is not None and value != path_uid:
        raise _bad(key, f"conflicts with the UID {_shown(path_uid)} in the request path")


def parse_qido_query(
    level: QueryLevel,
    params: Iterable[tuple[str, str]],
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> QidoQuery:
    """Turn percent-decoded query parameters (in order, repeats kept) into a C-FIND query.

    `study_uid`/`series_uid` are the UIDs in the resource path (e.g. /studies/{study}/series).
    Raises QueryError (400) for anything the gateway will not send to a PACS.
    """
    _check_scope(level, study_uid, series_uid)
    collected = _collect(level, params)
    _check_path_uid(collected.matches, _STUDY_UID, study_uid)
    _check_path_uid(collected.matches, _SERIES_UID, series_uid)

    study_scoped, series_scoped = study_uid is not None, series_uid is not None
    return_keywords = default_return_keywords(level, study_scoped, series_scoped)
    if collected.include_all:
        return_keywords += _all_keywords(level, study_scoped, series_scoped)

    values = {path: value for path, (_, value) in collected.matches.items()}
    if study_uid is not None:
        values[(_STUDY_UID,)] = study_uid
    if series_uid is not None:
        values[(_SERIES_UID,)] = series_uid
    matching = [MatchingKey(path, value) for path, value in values.items()]
    return_keys = [path for path in _paths_for(return_keywords) + collected.includes if path not in values]

    return QidoQuery(
        level=level,
        matching=tuple(matching),
        return_keys=tuple(dict.fromkeys(return_keys)),
        include_all=collected.include_all,
        limit=collected.controls.get("limit"),
        offset=collected.controls.get("offset", 0),
        fuzzy_matching=collected.controls.get("fuzzymatching", False),
    )
