"""UIDs as they enter from a URL: validated before anything (a C-FIND key, an S3 key, a file name,
a URL) is built from them."""
from __future__ import annotations

import re

from pydicom.uid import UID_dictionary

from dicomrst.messages import shown

# Leading zeros in a component are invalid per PS3.5 but occur in real archives; refusing them would
# make such instances unreachable, and they are as safe to build keys from.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_UID_LENGTH = 64


class InvalidUID(ValueError):
    pass


def is_valid_uid(value: str) -> bool:
    """PS3.5 9.1: digit components separated by dots, at most 64 characters."""
    return len(value) <= MAX_UID_LENGTH and _UID.fullmatch(value) is not None


def checked_uid(value: str, name: str) -> str:
    if not is_valid_uid(value):
        raise InvalidUID(f"{name} {shown(value, 80)} is not a valid UID (digits and dots, at most 64 characters)")
    return value


def is_known_transfer_syntax(uid: str) -> bool:
    """Whether pydicom's UID dictionary lists `uid` as a transfer syntax (retired ones included)."""
    entry = UID_dictionary.get(uid)
    return entry is not None and entry[1] == "Transfer Syntax"
