"""Quoting what a client or a config file sent, in an error message: bounded, since input is never
echoed unboundedly, and never failing (``str()`` of an int of thousands of digits raises)."""
from __future__ import annotations

from typing import Any


def shown(value: Any, limit: int = 64) -> str:
    """``value`` as a message quotes it: a string's repr, cut to ``limit`` characters with "..."."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number far too large"
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit - 3] + "...")
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
