"""Groups of value representations (PS3.5 6.2) that more than one module decides by."""
from __future__ import annotations

# PS3.4 C.2.2.2.4: the VRs for which `*` and `?` are wildcards in a matching key.
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
# PS3.4 C.2.2.2.5: range matching.
RANGE_VRS = frozenset({"DA", "TM", "DT"})
# Text VRs where a backslash is a character rather than a value delimiter (PS3.5 6.2).
SINGLE_VALUED_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
BINARY_INT_VRS = frozenset({"SS", "US", "SL", "UL", "SV", "UV"})
NUMERIC_VRS = frozenset({"IS", "DS", "FL", "FD"}) | BINARY_INT_VRS
# Values held as bytes: what DICOMweb may send as bulk data (PS3.18 8.7.3.3).
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
