"""transfer-syntax=* sends each instance as the PACS sent it: the data set byte for byte. Over DIMSE the
file meta information is not transmitted (PS3.7 C-STORE carries the data set only), so the gateway
writes it from what the C-STORE said: SOP class and instance, transfer syntax, its own implementation."""
from __future__ import annotations

from io import BytesIO

import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.filereader import read_preamble, _read_file_meta_info

from pydicom import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc

ALL_SYNTAXES = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def split_part10(part10: bytes) -> tuple[object, bytes]:
    stream = BytesIO(part10)
    read_preamble(stream, force=False)
    meta = _read_file_meta_info(stream)
    return meta, part10[stream.tell():]


def sent_by_the_pacs(orthanc: Orthanc, original: Dataset) -> bytes:
    """The data set as the PACS sends it in a C-STORE, received with bare pynetdicom (C-GET)."""
    received: list[bytes] = []

    def store(event: evt.Event) -> int:
        received.append(event.encoded_dataset(include_meta=False))
        return 0x0000

    ae = AE(ae_title="BARE")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    context = next(c for c in StoragePresentationContexts if c.abstract_syntax == original.SOPClassUID)
    ae.add_requested_context(context.abstract_syntax, [original.file_meta.TransferSyntaxUID])
    association = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet,
                               ext_neg=[build_role(original.SOPClassUID, scp_role=True)],
                               evt_handlers=[(evt.EVT_C_STORE, store)])
    assert association.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = original.StudyInstanceUID
    identifier.SeriesInstanceUID = original.SeriesInstanceUID
    identifier.SOPInstanceUID = original.SOPInstanceUID
    statuses = [int(status.Status) for status, _ in association.send_c_get(
        identifier, StudyRootQueryRetrieveInformationModelGet) if status]
    association.release()
    assert len(received) == 1, f"C-GET statuses {statuses}"
    return received[0]


def test_the_data_set_is_what_the_pacs_sent_byte_for_byte(gateway: Gateway, orthanc: Orthanc):
    for name in ("CT_small.dcm", "JPEG2000.dcm"):
        original = dcmread(get_testdata_file(name))
        path = (f"/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
                f"/instances/{original.SOPInstanceUID}")
        response = requests.get(f"{gateway.url}/aets/ORTHANC{path}", headers={"Accept": ALL_SYNTAXES}, timeout=30)
        [(_, received)] = parse_multipart(response.headers["Content-Type"], response.content)
        meta, data_set = split_part10(received)
        assert data_set == sent_by_the_pacs(orthanc, original), name
        assert meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
        assert meta.MediaStorageSOPClassUID == original.SOPClassUID
        assert meta.ImplementationClassUID  # the gateway's: the PACS's own never crosses DIMSE
