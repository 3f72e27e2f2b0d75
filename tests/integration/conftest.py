"""Session-wide real peers: one Orthanc filled with known studies, the gateway under gunicorn in
front of it (and in front of a PACS that is down and one that hangs), a PostgreSQL server."""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file

from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.peers import (  # part10 is imported from here by the tests too
    Gateway,
    Orthanc,
    Postgres,
    SilentPacs,
    StoreScp,
    free_port,
    gateway_config,
    part10,
    receiver_of,
    start_orthanc,
    start_postgres,
)

HUNG_TIMEOUT_MS = 1500


@dataclass
class KnownData:
    """What the session's Orthanc holds: generated studies plus real-world files pydicom ships."""

    studies: list[list[Dataset]]
    real_world: list[Dataset]

    def study(self, index: int) -> list[Dataset]:
        return self.studies[index]

    @property
    def study_uids(self) -> set[str]:
        uids = {study[0].StudyInstanceUID for study in self.studies}
        return uids | {dataset.StudyInstanceUID for dataset in self.real_world}


MULLER = Patient("Müller^Jürgen", "PID-1001", "19580214", "M", "ISO_IR 100")
YAMADA = Patient("Yamada^Tarou=山田^太郎", "PID-1002", "19710923", "M", "ISO_IR 192")
DOE = Patient("Doe^Jane", "PID-1003", "19850630", "F")
SMITH = Patient("Smith^John^A", "PID-1004", "19490101", "M")
REAL_WORLD_FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "rtdose.dcm", "SC_rgb_rle.dcm")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    peer = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def known_data(orthanc: Orthanc) -> KnownData:
    rng = random.Random(20261125)
    plans = (
        (MULLER, ("CT", "CT"), "20190312"),
        (YAMADA, ("MR",), "20200115"),
        (DOE, ("CT", "MR"), "20221130"),
        (SMITH, ("CT",), "20180501"),
        (DOE, ("MR",), "20230102"),
    )
    studies = [
        generate_study(rng, patient=patient, n_series=len(modalities), instances_per_series=2,
                       modalities=modalities, study_date=date, rows=16, columns=16)
        for patient, modalities, date in plans
    ]
    real_world = [dcmread(get_testdata_file(name)) for name in REAL_WORLD_FILES]
    for dataset in [instance for study in studies for instance in study]:
        orthanc.upload(part10(dataset))
    for name in REAL_WORLD_FILES:
        orthanc.upload(Path(get_testdata_file(name)).read_bytes())
    return KnownData(studies, real_world)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One server for the session; each test creates the databases it needs under names of its own."""
    peer = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def silent_pacs() -> Iterator[SilentPacs]:
    pacs = SilentPacs()
    yield pacs
    pacs.close()


MAX_UPLOAD_SIZE = 8_000_000


@pytest.fixture(scope="session")
def storescp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreScp]:
    """DCMTK's storescp, which accepts only uncompressed transfer syntaxes unless told otherwise."""
    peer = StoreScp(tmp_path_factory.mktemp("storescp"))
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc, known_data: KnownData,
            silent_pacs: SilentPacs, storescp: StoreScp) -> Iterator[Gateway]:
    config = gateway_config([
        {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port, "pool": {"size": 4, "timeout": 5000}},
        {"aet": "ORTHANCGET", "host": "127.0.0.1", "port": orthanc.dicom_port, "wado-rs": {"method": "get"}},
        {"aet": "DOWN", "host": "127.0.0.1", "port": free_port(), "qido-rs": {"timeout": 3000}},
        {"aet": "HUNG", "host": "127.0.0.1", "port": silent_pacs.port,
         "pool": {"size": 1, "timeout": 500}, "qido-rs": {"timeout": HUNG_TIMEOUT_MS}},
        {"aet": storescp.aet, "host": "127.0.0.1", "port": storescp.port},
    ], uncompressed=False, **{"max-upload-size": MAX_UPLOAD_SIZE})
    orthanc.add_modality(*receiver_of(config))
    process = Gateway(config, tmp_path_factory.mktemp("gateway"), workers=4)
    process.start()
    yield process
    process.stop()
