"""A PACS whose storage SCU calls with another AE title than its query/retrieve AE: the extension key
``aets[].wado-rs.calling-aets``, how the move receiver accepts those AETs and routes their C-STOREs to that
PACS's moves (the spool stays keyed by the PACS's own AET), and sealed moves, which take nothing more.
A real pynetdicom requestor stands in for the PACS's storage SCU."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.backends.base import InstanceSelection
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.backends.dimse.receiver import (
    StorageClasses,
    StoreRouter,
    _receiver_ae,
    _transfer_syntaxes,
    caller_routes,
)
from dicomrst.backends.dimse.spool import (
    finish_move,
    is_receiving,
    move_by_message_id,
    move_by_uids,
    register_move,
    seal_move,
)
from dicomrst.config import ConfigError, ReceiverConfig, parse_config
from tests.peers import free_port


def parse(text: str):
    return parse_config(yaml.safe_load(text))


# --- the key ---------------------------------------------------------------------------------------


def test_calling_aets_default_to_none():
    config = parse("aets: [{aet: PACS, host: h, port: 104}]")
    entry = config.aets[0]
    assert isinstance(entry, DimseAetConfig) and entry.wado_rs.calling_aets == ()


def test_calling_aets_are_read_as_ae_titles():
    config = parse("aets: [{aet: PACS-QR, host: h, port: 104, wado-rs: {calling-aets: [PACS-STORE, PACS-STORE2]}}]")
    assert config.aets[0].wado_rs.calling_aets == ("PACS-STORE", "PACS-STORE2")  # type: ignore[attr-defined]
    single = parse("aets: [{aet: PACS-QR, host: h, port: 104, wado-rs: {calling-aets: PACS-STORE}}]")
    assert single.aets[0].wado_rs.calling_aets == ("PACS-STORE",)  # type: ignore[attr-defined]


@pytest.mark.parametrize("value, message", [
    ("[GOOD, THIS-AET-IS-FAR-TOO-LONG]", "aets[0].wado-rs.calling-aets[1]: 'THIS-AET-IS-FAR-TOO-LONG' is not a valid AE title"),
    ("['']", "aets[0].wado-rs.calling-aets[0]: must not be empty"),
    ("{STORE: 1}", "aets[0].wado-rs.calling-aets: expected a list of AE titles, got dict"),
])
def test_a_bad_calling_aet_names_its_key_path(value: str, message: str):
    with pytest.raises(ConfigError) as caught:
        parse(f"aets: [{{aet: PACS, host: h, port: 104, wado-rs: {{calling-aets: {value}}}}}]")
    assert message in str(caught.value)


def test_the_calling_aets_key_is_not_unknown(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="dicomrst.config"):
        parse("aets: [{aet: PACS, host: h, port: 104, wado-rs: {calling-aets: [STORE], calling-aet: [X]}}]")
    # Only the misspelt key is unknown.
    assert [r.getMessage() for r in caplog.records if "unknown key" in r.getMessage()] == [
        "config: unknown key aets[0].wado-rs.calling-aet is ignored"]


# --- which calling AETs go to which PACS --------------------------------------------------------------


def test_each_pacs_is_called_by_its_own_aet_and_its_calling_aets():
    config = parse("""
aets:
  - {aet: QR, host: h, port: 104, wado-rs: {calling-aets: [STORE, STORE-2]}}
  - {aet: OTHER, host: h, port: 105}
  - {aet: BUCKET, backend: s3, endpoint: "http://s3.local", bucket: research-data, region: r}
""")
    assert caller_routes(config) == {"QR": ("QR",), "STORE": ("QR",), "STORE-2": ("QR",), "OTHER": ("OTHER",)}


def test_a_calling_aet_two_entries_claim_serves_both_own_aet_first():
    # Two entries for one PACS (an alias): C-STOREs from the PACS's AET may belong to either's moves.
    config = parse("""
aets:
  - {aet: ALIAS, host: h, port: 104, wado-rs: {calling-aets: [PACS]}}
  - {aet: PACS, host: h, port: 104}
  - {aet: THIRD, host: h, port: 104, wado-rs: {calling-aets: [PACS, THIRD]}}
""")
    routes = caller_routes(config)
    assert routes["PACS"] == ("PACS", "ALIAS", "THIRD")
    assert routes["ALIAS"] == ("ALIAS",) and routes["THIRD"] == ("THIRD",)


# --- the receiver -----------------------------------------------------------------------------------

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.1"


def instance(sop_uid: str | None = None) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = sop_uid or generate_uid()
    dataset.StudyInstanceUID = STUDY
    dataset.SeriesInstanceUID = SERIES
    dataset.Modality = "CT"
    return dataset


ROUTES = {"QR": ("QR",), "STORE": ("QR",), "OTHER": ("OTHER",)}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[ReceiverConfig, Path]]:
    config = ReceiverConfig(aet="GW-RECEIVER", interface="127.0.0.1", port=free_port(), uncompressed=True)
    calling_aets = list(ROUTES)
    server: ThreadedAssociationServer = _receiver_ae(config, calling_aets).start_server(
        (config.interface, config.port), block=False,
        evt_handlers=[*StorageClasses(_transfer_syntaxes(config), calling_aets).handlers(),
                      *StoreRouter(tmp_path, ROUTES).handlers()],
    )
    yield config, tmp_path
    server.shutdown()


def send(receiver: ReceiverConfig, calling_aet: str, datasets: list[Dataset], message_id: int | None) -> list[Any]:
    """C-STOREs as a PACS's storage SCU sends them for a C-MOVE; None for an association refused."""
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    association = ae.associate(receiver.interface, receiver.port, ae_title=receiver.aet)
    if not association.is_established:
        return [None]
    try:
        statuses = []
        for dataset in datasets:
            kwargs = {} if message_id is None else {"originator_aet": "GW", "originator_id": message_id}
            status = association.send_c_store(dataset, **kwargs)
            statuses.append(int(status.Status) if "Status" in status else None)
        return statuses
    finally:
        association.release()


def test_a_pacs_storing_with_another_aet_reaches_its_moves(receiver: tuple[ReceiverConfig, Path]):
    config, root = receiver
    move = register_move(root, "QR", InstanceSelection(STUDY))
    try:
        assert send(config, "STORE", [instance()], move.message_id) == [0x0000]
        assert send(config, "QR", [instance()], move.message_id) == [0x0000]  # its own AET still works
        assert len(move.arrived()) == 2
        # Not the moves of another PACS, whatever the message id.
        assert send(config, "OTHER", [instance()], move.message_id) == [0xA700]
        assert len(move.arrived()) == 2
    finally:
        finish_move(move)


def test_without_the_message_id_the_calling_aet_still_names_the_pacs(receiver: tuple[ReceiverConfig, Path]):
    config, root = receiver
    move = register_move(root, "QR", InstanceSelection(STUDY, SERIES))
    other = register_move(root, "OTHER", InstanceSelection(STUDY, SERIES))
    try:
        assert send(config, "STORE", [instance(), instance()], None) == [0x0000, 0x0000]
        assert len(move.arrived()) == 2 and other.arrived() == []
    finally:
        finish_move(move)
        finish_move(other)


def test_an_aet_no_entry_names_is_refused_whole(receiver: tuple[ReceiverConfig, Path]):
    config, root = receiver
    move = register_move(root, "QR", InstanceSelection(STUDY))
    try:
        assert send(config, "STRANGER", [instance()], move.message_id) == [None]
        assert move.arrived() == []
    finally:
        finish_move(move)


def test_the_same_message_id_to_two_pacs_sharing_a_calling_aet_goes_to_the_move_that_covers_it(tmp_path: Path,
                                                                                             monkeypatch):
    import random

    monkeypatch.setattr(random, "randint", lambda low, high: 77)
    elsewhere = register_move(tmp_path, "PACS", InstanceSelection("1.2.3.999"))
    ours = register_move(tmp_path, "ALIAS", InstanceSelection(STUDY))
    assert elsewhere.message_id == ours.message_id == 77
    router = StoreRouter(tmp_path, {"PACS": ("PACS", "ALIAS")})
    dataset = instance()
    event = _store_event("PACS", dataset, message_id=77)
    assert router.store(event) == 0x0000
    assert len(ours.arrived()) == 1 and elsewhere.arrived() == []


def _store_event(calling_aet: str, dataset: Dataset, message_id: int | None) -> Any:
    from types import SimpleNamespace

    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.dsutils import encode

    # What pynetdicom hands the handler: the command's UIDs, the data set as it came, the context.
    request = SimpleNamespace(AffectedSOPInstanceUID=dataset.SOPInstanceUID, AffectedSOPClassUID=dataset.SOPClassUID,
                              MoveOriginatorMessageID=message_id, DataSet=BytesIO(encode(dataset, False, True)))
    assoc = SimpleNamespace(requestor=SimpleNamespace(ae_title=calling_aet))
    return SimpleNamespace(assoc=assoc, request=request, dataset=dataset,
                           context=SimpleNamespace(transfer_syntax=ExplicitVRLittleEndian))


# --- sealed moves -----------------------------------------------------------------------------------


def test_a_sealed_move_takes_no_more_instances(tmp_path: Path):
    move = register_move(tmp_path, "QR", InstanceSelection(STUDY))
    assert move_by_message_id(tmp_path, "QR", move.message_id) == move.directory
    assert move_by_uids(tmp_path, "QR", STUDY, SERIES, "1.2.3") == move.directory
    assert is_receiving(move.directory)
    seal_move(move)
    assert move_by_message_id(tmp_path, "QR", move.message_id) is None
    assert move_by_uids(tmp_path, "QR", STUDY, SERIES, "1.2.3") is None
    assert not is_receiving(move.directory)
    assert move.arrived() == []  # the seal is not an instance
    finish_move(move)
    seal_move(move)  # sealing a move that has ended is no error
    assert not move.directory.exists()


def test_an_association_bound_to_a_move_that_was_sealed_binds_anew(tmp_path: Path):
    """A PACS that omits the message id and reuses its association for the next move: the next move's
    instances go to the next move, not to the sealed one the association was bound to."""
    router = StoreRouter(tmp_path, {"QR": ("QR",)})
    first = register_move(tmp_path, "QR", InstanceSelection(STUDY))
    event = _store_event("QR", instance(), message_id=None)
    assert router.store(event) == 0x0000 and len(first.arrived()) == 1
    seal_move(first)
    second = register_move(tmp_path, "QR", InstanceSelection(STUDY))
    later = _store_event("QR", instance(), message_id=None)
    later.assoc = event.assoc  # the same association: the router had bound it to the first move
    assert router.store(later) == 0x0000
    assert len(first.arrived()) == 1 and len(second.arrived()) == 1
    finish_move(first)
    finish_move(second)
