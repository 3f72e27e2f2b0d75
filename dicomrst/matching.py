"""C-FIND attribute matching (PS3.4 C.2.2.2): the one meaning of a QIDO-RS or C-FIND key, whatever
answers it (the sample PACS, the gateway checking what a PACS returned, an index).

Covered: universal, single value, list of UID, wild card and range matching, and sequence matching
(an item of the attribute's sequence matches every key of the key's item). Matching is case-sensitive
except for PN, which PS3.4 C.2.2.2.1 lets an SCP match case-insensitively, as users expect when typing
names; a PN key without '=' is compared with every component group (alphabetic, ideographic,
phonetic). Values are compared as pydicom decoded them, so the character set is already applied.

Depends on pydicom only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from dicomrst.vrs import NUMERIC_VRS, RANGE_VRS, WILDCARD_VRS

__all__ = ["dataset_matches", "is_universal", "key_values", "match_values", "normalise", "pn_candidates",
           "unmatched_keys"]



def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, PersonName)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def key_values(elem: DataElement) -> list[str]:
    """The element's values as strings; empty strings dropped."""
    return [text for text in (str(v) for v in _as_list(elem.value)) if text != ""]


def is_universal(elem: DataElement) -> bool:
    """A zero-length key (or a sequence key) matches every entity."""
    return elem.VR == "SQ" or not key_values(elem)


@lru_cache(maxsize=256)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def pn_candidates(value: str) -> list[str]:
    """The whole name and each component group, trailing '^' removed.

    A key like 'Yamada^Tarou' should find 'Yamada^Tarou=山田^太郎', and so should
    '山田^太郎': a key without '=' is compared with every component group.
    """
    groups = value.split("=")
    return [candidate.rstrip("^") for candidate in [value, *groups] if candidate]


def _match_text(key: str, value: str, vr: str) -> bool:
    wildcard = vr in WILDCARD_VRS and ("*" in key or "?" in key)
    if vr == "PN":
        key = key.rstrip("^") if not wildcard else key
        candidates = pn_candidates(value) if "=" not in key else [value.rstrip("^")]
        if wildcard:
            regex = _wildcard_regex(key, True)
            return any(regex.fullmatch(c) for c in candidates)
        return any(key.casefold() == c.casefold() for c in candidates)
    if wildcard:
        return _wildcard_regex(key, False).fullmatch(value) is not None
    return key == value


def _normalise_time(value: str, *, upper: bool) -> str:
    """HHMMSS.FFFFFF with missing parts filled, so that string order is time order.

    An upper bound is filled with '9's: '18' must include 18:59:59.999999, and
    since no valid minute or second exceeds 59, '189999' sorts after all of them.
    """
    fill = "9" if upper else "0"
    whole, _, fraction = value.replace(":", "").partition(".")
    return f"{whole.ljust(6, fill)}.{fraction.ljust(6, fill)}"


def _normalise_datetime(value: str, *, upper: bool) -> str:
    # Time zone offsets are ignored: the sample data has none.
    core = re.split(r"[+-]", value, maxsplit=1)[0]
    fill = "9" if upper else "0"
    whole, _, fraction = core.partition(".")
    return f"{whole.ljust(14, fill)}.{fraction.ljust(6, fill)}"


def normalise(value: str, vr: str, *, upper: bool) -> str:
    """A DA, TM or DT value in a form whose string order is time order (``upper``: a bound filled
    to the end of the period it names)."""
    if vr == "TM":
        return _normalise_time(value, upper=upper)
    if vr == "DT":
        return _normalise_datetime(value, upper=upper)
    return value.replace(".", "")  # DA, including the old 'YYYY.MM.DD' form


def _match_range(key: str, value: str, vr: str) -> bool:
    start, _, end = key.partition("-")
    lower_ok = not start or normalise(value, vr, upper=False) >= normalise(start, vr, upper=False)
    upper_ok = not end or normalise(value, vr, upper=False) <= normalise(end, vr, upper=True)
    return lower_ok and upper_ok


def _match_numeric(key: str, value: str) -> bool:
    try:
        return float(key) == float(value)
    except ValueError:
        return key == value


def _match_one(key: str, value: str, vr: str) -> bool:
    if vr in RANGE_VRS:
        # A DT value may carry a '-hhmm' offset, so only a lone '-' is read as a range there.
        if (vr != "DT" and "-" in key) or (vr == "DT" and key.count("-") == 1):
            return _match_range(key, value, vr)
        return normalise(key, vr, upper=False) == normalise(value, vr, upper=False)
    if vr in NUMERIC_VRS:
        return _match_numeric(key, value)
    return _match_text(key, value, vr)


def match_values(key: DataElement, values: list[str]) -> bool:
    """Whether a non-universal key matches an entity whose attribute has ``values``.

    A multi-valued key matches when any of its values does (list of UID matching,
    and the same reading for e.g. ModalitiesInStudy 'CT\\MR'); a multi-valued
    attribute matches when any of its values does.
    """
    return any(_match_one(k, v, key.VR) for k in key_values(key) for v in values)


def unmatched_keys(identifier: Dataset, candidate: Dataset) -> tuple[list[int], list[int]]:
    """The matching keys of ``identifier`` that ``candidate`` fails, and those it cannot be checked on
    because it lacks the attribute (a PACS may leave out what it does not keep).

    Return keys (zero length) and the bookkeeping elements (QueryRetrieveLevel, SpecificCharacterSet)
    are not matching keys.
    """
    failed: list[int] = []
    unknown: list[int] = []
    for key in identifier:
        tag = int(key.tag)
        if tag in _NOT_KEYS or is_universal(key) and key.VR != "SQ":
            continue
        if key.VR == "SQ":
            items = [item for item in (key.value or []) if any(not is_universal(e) for e in item)]
            if not items:
                continue
            if tag not in candidate or candidate[tag].VR != "SQ":
                unknown.append(tag)
            elif not _sequence_matches(items[0], candidate[tag].value):
                failed.append(tag)
            continue
        if tag not in candidate:
            unknown.append(tag)
        elif not match_values(key, key_values(candidate[tag])):
            failed.append(tag)
    return failed, unknown


def dataset_matches(identifier: Dataset, candidate: Dataset) -> bool:
    """Whether ``candidate`` matches every matching key of ``identifier`` it holds."""
    failed, _ = unmatched_keys(identifier, candidate)
    return not failed


def _sequence_matches(key_item: Dataset, items: Iterable[Dataset]) -> bool:
    # PS3.4 C.2.2.2.6: one item of the attribute matches all the keys of the key's item.
    for item in items:
        failed, unknown = unmatched_keys(key_item, item)
        if not failed and not unknown:
            return True
    return False


_NOT_KEYS = frozenset({0x00080005, 0x00080052})  # SpecificCharacterSet, QueryRetrieveLevel
