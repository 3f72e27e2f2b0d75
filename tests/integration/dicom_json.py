"""Reading DICOM JSON answers in tests."""
from __future__ import annotations

from typing import Any

from pydicom.datadict import tag_for_keyword


def tag(keyword: str) -> str:
    number = tag_for_keyword(keyword)
    assert number is not None, keyword
    return f"{number:08X}"


def values(match: dict[str, Any], keyword: str) -> list[Any]:
    return match.get(tag(keyword), {}).get("Value", [])


def value(match: dict[str, Any], keyword: str) -> Any:
    found = values(match, keyword)
    return found[0] if found else None


def person_name(match: dict[str, Any], keyword: str = "PatientName") -> str | None:
    name = value(match, keyword)
    if name is None:
        return None
    groups = [name.get("Alphabetic", ""), name.get("Ideographic", ""), name.get("Phonetic", "")]
    return "=".join(groups).rstrip("=")
