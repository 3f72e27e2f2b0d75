"""The one character set the gateway speaks: UTF-8, as DICOM names it (PS3.3 C.12.1.1.2). It asks a
PACS for UTF-8 answers, declares it in what it sends, and pydicom decodes whatever arrives."""
from __future__ import annotations

UTF8_CHARSET = "ISO_IR 192"
SPECIFIC_CHARACTER_SET = 0x00080005
