"""Attribute matching (PS3.4 C.2.2.2) as the index does it in SQL: the rows kept for each value of an
indexed attribute, and the SQL condition on them that a matching key's value makes.

The meaning is ``dicomrst.matching``'s, which the sample PACS and the gateway's check of PACS answers
use, so that a query means the same on a bucket as on a PACS:
- single value and list of UID matching compare the value as stored;
- wild card matching (``*``, ``?``) is case-sensitive, but for PN;
- a PN is compared without regard to case, with the whole name and with each component group, trailing
  '^' ignored; a key holding '=' is compared with the whole name only;
- DA, TM and DT compare in time order (``normalise``), ranges inclusive and open at either end;
- numbers compare as numbers.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydicom.dataelem import DataElement
from sqlalchemy import ColumnElement, and_, false, or_
from sqlalchemy.sql.expression import literal

from dicomrst.index.schema import attribute_values
from dicomrst.matching import key_values, normalise, pn_candidates
from dicomrst.vrs import NUMERIC_VRS, RANGE_VRS, WILDCARD_VRS

Row = dict[str, Any]


def value_rows(element: DataElement) -> Iterator[Row]:
    """The ``attribute_values`` rows of one element (``instance_id`` left to the caller)."""
    tag, vr = int(element.tag), element.VR
    for value in key_values(element):
        if vr == "PN":
            # pn_candidates puts the whole name first. A group that folds to the same text as the whole
            # name (a name of one group) needs no row of its own: a key matching it matches the whole.
            folded_candidates = dict.fromkeys(candidate.casefold() for candidate in pn_candidates(value))
            for index, folded in enumerate(folded_candidates):
                yield {"tag": tag, "value": value, "folded": folded, "whole": 1 if index == 0 else 0,
                       "sortable": None, "number": None}
        elif vr in RANGE_VRS:
            yield {"tag": tag, "value": value, "folded": None, "whole": None,
                   "sortable": normalise(value, vr, upper=False), "number": None}
        elif vr in NUMERIC_VRS:
            yield {"tag": tag, "value": value, "folded": None, "whole": None, "sortable": None,
                   "number": _number(value)}
        else:
            yield {"tag": tag, "value": value, "folded": None, "whole": None, "sortable": None, "number": None}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def key_condition(vr: str, keys: list[str], dialect: str) -> ColumnElement[bool]:
    """The condition on ``attribute_values`` rows of the key's tag that a value of an entity must meet:
    any of the key's values (list of UID matching) matching."""
    conditions = [_one(vr, key, dialect) for key in keys]
    return or_(*conditions) if conditions else false()


def _one(vr: str, key: str, dialect: str) -> ColumnElement[bool]:
    column = attribute_values.c
    if vr in RANGE_VRS:
        # A DT value may carry a '-hhmm' offset, so only a lone '-' is read as a range there.
        if (vr != "DT" and "-" in key) or (vr == "DT" and key.count("-") == 1):
            start, _, end = key.partition("-")
            bounds = []
            if start:
                bounds.append(column.sortable >= normalise(start, vr, upper=False))
            if end:
                bounds.append(column.sortable <= normalise(end, vr, upper=True))
            return and_(column.sortable.is_not(None), *bounds)
        return column.sortable == normalise(key, vr, upper=False)
    if vr in NUMERIC_VRS:
        number = _number(key)
        return column.value == key if number is None else column.number == number
    wildcard = vr in WILDCARD_VRS and ("*" in key or "?" in key)
    if vr == "PN":
        if not wildcard:
            key = key.rstrip("^")
        scope = column.whole == 1 if "=" in key else literal(True)
        target = key.casefold()
        compared = _wildcard(column.folded, target, dialect) if wildcard else column.folded == target
        return and_(scope, compared)
    if wildcard:
        return _wildcard(column.value, key, dialect)
    return column.value == key


def _wildcard(column: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """``*`` any run of characters, ``?`` one, everything else itself, case-sensitively: GLOB on SQLite
    (its LIKE ignores ASCII case), LIKE on PostgreSQL (case-sensitive there)."""
    if dialect == "sqlite":
        # In GLOB only * ? [ are special; '[' stands for itself as the class '[[]'.
        return column.op("GLOB")(pattern.replace("[", "[[]"))
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")
