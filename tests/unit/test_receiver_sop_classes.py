"""The move receiver accepts whatever storage SOP class a PACS proposes (retired, private), in its own
transfer syntaxes, and keeps refusing other services; a real pynetdicom requestor stands in for the PACS."""
from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid
from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.backends.base import InstanceSelection
from dicomrst.backends.dimse.receiver import (
    StorageClasses,
    StoreRouter,
    _receiver_ae,
    _transfer_syntaxes,
    is_storage_class,
)
from dicomrst.backends.dimse.spool import finish_move, register_move
from dicomrst.config import ReceiverConfig
from tests.peers import free_port

PACS = "SOMEPACS"
US_RETIRED = "1.2.840.10008.5.1.4.1.1.6"
PRIVATE = "1.2.826.0.1.3680043.8.498.20261126.2"
CT = "1.2.840.10008.5.1.4.1.1.2"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
MODALITY_WORKLIST = "1.2.840.10008.5.1.4.31"


@pytest.mark.parametrize("uid, storage", [
    (CT, True), (US_RETIRED, True), (PRIVATE, True),
    ("1.2.840.10008.5.1.1.29", True),  # Hardcopy Grayscale Image Storage (retired)
    ("1.2.840.10008.5.1.4.1.1.88.1", True),  # Text SR Storage - Trial (retired)
    ("1.2.840.10008.5.1.4.38.1", True),  # Hanging Protocol Storage (non-patient object)
    (PATIENT_ROOT_FIND, False), (STORAGE_COMMITMENT, False), (MODALITY_WORKLIST, False),
    ("1.2.840.10008.1.20.2", False),  # Storage Commitment Pull Model (retired)
    ("1.2.840.10008.1.1", False), ("1.2.840.10008.1.2.1", False),
])
def test_storage_classes_are_told_from_other_services(uid: str, storage: bool):
    assert is_storage_class(uid) is storage


@pytest.fixture(params=[True, False], ids=["uncompressed", "any-syntax"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ReceiverConfig, Path]]:
    config = ReceiverConfig(aet="GW-RECEIVER", interface="127.0.0.1", port=free_port(), uncompressed=request.param)
    ae = _receiver_ae(config, [PACS])
    server: ThreadedAssociationServer = ae.start_server(
        (config.interface, config.port), block=False,
        evt_handlers=[*StorageClasses(_transfer_syntaxes(config), [PACS]).handlers(),
                      *StoreRouter(tmp_path).handlers()],
    )
    yield config, tmp_path
    server.shutdown()


def requestor(aet: str = PACS) -> AE:
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for uid in (US_RETIRED, PRIVATE, CT):
        ae.add_requested_context(uid, [str(JPEGBaseline8Bit), str(RLELossless), str(ExplicitVRLittleEndian)])
    for uid in (PATIENT_ROOT_FIND, STORAGE_COMMITMENT, MODALITY_WORKLIST):
        ae.add_requested_context(uid)
    return ae


def instance(sop_class: str) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "P"
    return dataset


def test_every_storage_class_is_accepted_in_the_receivers_syntaxes(receiver: tuple[ReceiverConfig, Path]):
    config, spool = receiver
    association = requestor().associate("127.0.0.1", config.port, ae_title=config.aet)
    assert association.is_established
    try:
        accepted = {str(c.abstract_syntax): str(c.transfer_syntax[0]) for c in association.accepted_contexts}
        # Storage classes, retired and private ones too; no other service.
        assert set(accepted) == {US_RETIRED, PRIVATE, CT}
        # The receiver's preference decides: Explicit VR Little Endian comes first in both of its lists.
        assert set(accepted.values()) == {str(ExplicitVRLittleEndian)}

        # C-STOREs of a retired and a private class reach the move they belong to (pynetdicom used to
        # abort the association on a class it had not registered).
        for sop_class in (US_RETIRED, PRIVATE):
            dataset = instance(sop_class)
            move = register_move(spool, PACS, InstanceSelection(dataset.StudyInstanceUID))
            try:
                result = association.send_c_store(dataset, originator_aet=PACS, originator_id=move.message_id)
                assert result.Status == 0x0000
                (path,) = move.arrived()
                assert dcmread(BytesIO(path.read_bytes())).SOPClassUID == sop_class
            finally:
                finish_move(move)
        assert association.is_established
    finally:
        association.release()


def test_compressed_only_proposals_follow_the_receivers_setting(receiver: tuple[ReceiverConfig, Path]):
    config, _ = receiver
    ae = AE(ae_title=PACS)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(US_RETIRED, [str(RLELossless)])
    association = ae.associate("127.0.0.1", config.port, ae_title=config.aet)
    try:
        if config.uncompressed:
            assert not association.is_established or not association.accepted_contexts
        else:
            assert [str(c.transfer_syntax[0]) for c in association.accepted_contexts] == [str(RLELossless)]
    finally:
        if association.is_established:
            association.release()


def test_unconfigured_aets_are_still_rejected(receiver: tuple[ReceiverConfig, Path]):
    config, _ = receiver
    association = requestor("STRANGER").associate("127.0.0.1", config.port, ae_title=config.aet)
    assert association.is_rejected
