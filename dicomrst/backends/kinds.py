"""The backend kinds a config may name in ``aets[].backend``: one line each. A new kind is its own
folder (``config.py`` with its schema and ``BackendKind``, and its backend) plus a line here."""
from __future__ import annotations

from dicomrst.backends.dimse.config import DIMSE
from dicomrst.backends.kind import BackendKind
from dicomrst.backends.s3.config import S3

KINDS: dict[str, BackendKind] = {kind.name: kind for kind in (DIMSE, S3)}
DEFAULT_KIND = DIMSE.name  # DICOM-RST's default for an entry without ``backend``
