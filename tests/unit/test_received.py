"""``received_part10`` against pynetdicom's ``encoded_dataset()``: the same bytes."""
from io import BytesIO
from types import SimpleNamespace

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, UID
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from dicomrst.backends.dimse.received import received_part10


@pytest.mark.parametrize("sop_class", ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7"])
@pytest.mark.parametrize("sop_instance", ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498." + "1" * 38])
@pytest.mark.parametrize("transfer_syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, JPEG2000Lossless])
def test_the_bytes_are_pynetdicoms(sop_class, sop_instance, transfer_syntax):
    request = C_STORE()
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_instance
    request.DataSet = BytesIO(b"\x08\x00\x18\x00" + b"the data set as it came")
    event = SimpleNamespace(request=request, context=SimpleNamespace(transfer_syntax=UID(transfer_syntax)))
    meta = encode_file_meta(create_file_meta(sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance),
                                             transfer_syntax=UID(transfer_syntax)))
    assert received_part10(event) == b"\0" * 128 + b"DICM" + meta + request.DataSet.getvalue()
