"""File names built from AE titles, which may hold spaces, slashes and other characters no path
should carry."""
from __future__ import annotations

import hashlib
import re


def safe_name(text: str) -> str:
    """A file name that reads like ``text`` and differs whenever ``text`` does."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{readable}-{digest}"
