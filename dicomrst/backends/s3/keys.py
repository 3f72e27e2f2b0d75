"""Object keys of the DICOM-RST layout, built only from validated UIDs."""
from __future__ import annotations

from dicomrst.backends.base import InstanceSelection
from dicomrst.dicomweb.uids import checked_uid


def selection_prefix(selection: InstanceSelection) -> str:
    """``{study}/`` or ``{study}/{series}/``: the trailing slash keeps study 1.2 from matching 1.23."""
    prefix = f"{checked_uid(selection.study_uid, 'Study Instance UID')}/"
    if selection.series_uid is not None:
        prefix += f"{checked_uid(selection.series_uid, 'Series Instance UID')}/"
    return prefix


def instance_key(selection: InstanceSelection) -> str:
    if selection.series_uid is None or selection.sop_uid is None:
        raise ValueError("an instance key needs the series and the SOP instance UID")
    return f"{selection_prefix(selection)}{checked_uid(selection.sop_uid, 'SOP Instance UID')}.dcm"
