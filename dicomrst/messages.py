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


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: what would let input start a
# new line (or a terminal escape) in a log.
_CONTROLS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def loggable(text: str) -> str:
    """``text`` with control characters escaped (``\\x0a``), so that input written to a log cannot forge
    a line of its own; a backslash is escaped too, so an escape seen in the log was one in the input."""
    return text.replace("\\", "\\\\").translate(_CONTROLS)
