"""STOW-RS on two associations at once when the PACS's pool has room for a second (one C-STORE waits for
its response, so a second sends meanwhile), through the gateway under gunicorn against Orthanc; and on one
when the pool holds one slot. Every instance stored either way, and reported in the order of the body."""
from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
import requests
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from dicomrst.backends.dimse.association import Peer
from dicomrst.backends.dimse.store import DimseStoreSession
from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.dicomweb.stow import inspect_part
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.integration.dicom_json import value
from tests.integration.test_find_cancel import log_during
from tests.peers import Gateway, Orthanc, gateway_config

BOUNDARY = "two-associations"
INSTANCES = 16


@pytest.fixture(scope="module")
def debug_gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[Gateway]:
    config = gateway_config([
        {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
        # The same Orthanc with a pool of one: no room for a second association.
        {"aet": "ONESLOT", "host": "127.0.0.1", "port": orthanc.dicom_port, "pool": {"size": 1}},
    ], receiver_aet="DICOMRST-TWOSTOW")
    config["telemetry"]["level"] = "DEBUG"  # "association open with ..." is a DEBUG line
    gateway = Gateway(config, tmp_path_factory.mktemp("stow-two"), workers=1)
    gateway.start()
    yield gateway
    gateway.stop()


def stow(gateway: Gateway, aet: str, seed: int) -> tuple[list[str], dict, str]:
    study = generate_study(random.Random(seed), n_series=1, instances_per_series=INSTANCES, rows=64, columns=64)
    return stow_datasets(gateway, aet, study)


def stow_datasets(gateway: Gateway, aet: str, datasets: list[Dataset]) -> tuple[list[str], dict, str]:
    """The instances' UIDs in the order sent, the response module and the gateway's log meanwhile."""
    body = b"".join(write_multipart([part10(d) for d in datasets], "application/dicom", BOUNDARY))
    responses: list[requests.Response] = []
    log = log_during(gateway, lambda: responses.append(requests.post(
        f"{gateway.url}/aets/{aet}/studies", data=body, timeout=60,
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'})))
    assert responses[0].status_code == 200, responses[0].text
    return [str(d.SOPInstanceUID) for d in datasets], responses[0].json(), log


def referenced(module: dict) -> list[str]:
    return [value(item, "ReferencedSOPInstanceUID") for item in module["00081199"]["Value"]]


def opened(log: str, aet: str) -> int:
    return len(re.findall(rf"association open with {aet}@", log))


def test_a_pool_with_room_stores_on_two_associations(debug_gateway: Gateway, orthanc: Orthanc):
    sent, module, log = stow(debug_gateway, orthanc.aet, 71)
    assert referenced(module) == sent  # all stored, in the order of the body
    assert opened(log, orthanc.aet) == 2, log[-3000:]
    for uid in sent:
        found = requests.post(f"{orthanc.url}/tools/find", timeout=10,
                              json={"Level": "Instance", "Query": {"SOPInstanceUID": uid}}).json()
        assert len(found) == 1


def test_a_pool_of_one_stores_on_one(debug_gateway: Gateway):
    sent, module, log = stow(debug_gateway, "ONESLOT", 72)
    assert referenced(module) == sent
    assert opened(log, "ONESLOT") == 1, log[-3000:]


def test_the_spare_session_proposes_what_the_first_instances_need(orthanc: Orthanc, tmp_path):
    """Against Orthanc: a session opened like a CT and an MR instance proposes their two classes in
    Explicit VR Little Endian (each instance's own syntax and its fallback being the same pair), not the
    120-odd common classes; an instance of a class it did not propose still goes through, renegotiated."""
    ct, mr = (generate_study(random.Random(seed), n_series=1, instances_per_series=1, rows=8, columns=8,
                             modalities=(modality,))[0] for seed, modality in ((81, "CT"), (82, "MR")))
    secondary = generate_study(random.Random(83), n_series=1, instances_per_series=1, rows=8, columns=8,
                               modalities=("CT",))[0]
    secondary.SOPClassUID = secondary.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    uploaded = []
    for name, dataset in (("ct", ct), ("mr", mr), ("sc", secondary)):
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(part10(dataset))
        uploaded.append(inspect_part(path))
    session = DimseStoreSession(Peer(orthanc.aet, "127.0.0.1", orthanc.dicom_port, "DICOMRST-TWOSTOW"), 10.0, orthanc.aet)
    try:
        session.open(uploaded[:2])
        association = session._association
        assert association is not None
        proposed = {(str(c.abstract_syntax), tuple(c.transfer_syntax)) for c in association.requestor.requested_contexts}
        assert proposed == {(str(ct.SOPClassUID), (ExplicitVRLittleEndian,)),
                            (str(mr.SOPClassUID), (ExplicitVRLittleEndian,))}
        assert all(session.store(instance).stored for instance in uploaded)
        assert session._association is not association  # the secondary capture renegotiated
    finally:
        session.close()


def test_a_body_of_several_classes_renegotiates_once(debug_gateway: Gateway, orthanc: Orthanc):
    """The request's session proposes what its first instance needs; the first instance of another class
    renegotiates, proposing the common classes too, so the classes after it need no third association."""
    instances = []
    for seed, modality in ((91, "CT"), (92, "CT"), (93, "CT"), (94, "MR"), (95, "CT")):
        instances.append(generate_study(random.Random(seed), n_series=1, instances_per_series=1, rows=8, columns=8,
                                        modalities=(modality,))[0])
    instances[1].SOPClassUID = instances[1].file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    sent, module, log = stow_datasets(debug_gateway, "ONESLOT", instances)
    assert referenced(module) == sent
    assert opened(log, "ONESLOT") == 2, log[-3000:]
    assert len(re.findall(r"renegotiating with ONESLOT@", log)) == 1, log[-3000:]
