"""The sample PACS against a real pynetdicom SCU and a real move-destination Storage SCP."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.sample_pacs.scp import serve
from dicomrst.sample_pacs.studies import PATIENTS, generate_study, sample_studies

PACS_AET = "SAMPLE"
DESTINATION_AET = "TESTDEST"
TIMEOUT_S = 10.0

STUDY_FIND = StudyRootQueryRetrieveInformationModelFind
PATIENT_FIND = PatientRootQueryRetrieveInformationModelFind


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _running(server: ThreadedAssociationServer | None) -> Iterator[ThreadedAssociationServer]:
    assert server is not None
    try:
        yield server
    finally:
        server.shutdown()


def _scu(ae_title: str = "TESTSCU") -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    return ae


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def expected() -> list[list[Dataset]]:
    return sample_studies()


@dataclass
class Destination:
    """The move destination: a Storage SCP recording what it receives."""

    port: int
    received: list[Dataset] = field(default_factory=list)


@pytest.fixture(scope="module")
def destination() -> Iterator[Destination]:
    dest = Destination(_free_port())

    def on_store(event: evt.Event) -> int:
        dest.received.append(event.dataset)
        return 0x0000

    ae = _scu(DESTINATION_AET)
    for sop_class in (CTImageStorage, MRImageStorage):
        ae.add_supported_context(sop_class)
    server = ae.start_server(
        ("127.0.0.1", dest.port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    with _running(server):
        yield dest


@pytest.fixture(scope="module")
def pacs_port(tmp_path_factory: pytest.TempPathFactory, destination: Destination) -> Iterator[int]:
    port = _free_port()
    folder = tmp_path_factory.mktemp("sample-pacs")
    destinations = {DESTINATION_AET: ("127.0.0.1", destination.port)}
    with _running(serve(folder, aet=PACS_AET, port=port, destinations=destinations, block=False)):
        yield port


@pytest.fixture
def associate(pacs_port: int) -> Iterator[Callable[..., Association]]:
    opened: list[Association] = []

    def open_association(*contexts: Any, ae: AE | None = None, **kwargs: Any) -> Association:
        scu = ae or _scu()
        for context in contexts:
            scu.add_requested_context(context)
        assoc = scu.associate("127.0.0.1", pacs_port, ae_title=PACS_AET, **kwargs)
        assert assoc.is_established
        opened.append(assoc)
        return assoc

    yield open_association
    for assoc in opened:
        if assoc.is_established:
            assoc.release()


def _find(assoc: Association, query: Dataset, model: Any = STUDY_FIND) -> list[Dataset]:
    matches: list[Dataset] = []
    final_status = None
    for status, identifier in assoc.send_c_find(query, model):
        if status.Status == 0xFF00:
            matches.append(identifier)
        else:
            final_status = status.Status
    assert final_status == 0x0000
    return matches


def _query(level: str, charset: str | None = None, **keys: Any) -> Dataset:
    query = Dataset()
    if charset:
        query.SpecificCharacterSet = charset
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def _study_uids(matches: list[Dataset]) -> set[str]:
    return {str(m.StudyInstanceUID) for m in matches}


def _uids_where(studies: list[list[Dataset]], predicate: Callable[[Dataset], bool]) -> set[str]:
    return {str(s[0].StudyInstanceUID) for s in studies if predicate(s[0])}


# ---------------------------------------------------------------- verification and C-FIND


def test_echo(associate: Callable[..., Association]) -> None:
    assert associate(Verification).send_c_echo().Status == 0x0000


def test_study_find_returns_seeded_studies_with_counts_modalities_and_names(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    query = _query(
        "STUDY",
        StudyInstanceUID="",
        PatientName="",
        PatientID="",
        StudyDate="",
        StudyDescription="",
        AccessionNumber="",
        ModalitiesInStudy="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
    )
    matches = {str(m.StudyInstanceUID): m for m in _find(associate(STUDY_FIND), query)}

    assert set(matches) == {str(s[0].StudyInstanceUID) for s in expected}
    for study in expected:
        first = study[0]
        match = matches[str(first.StudyInstanceUID)]
        assert str(match.PatientName) == str(first.PatientName)
        assert match.get("SpecificCharacterSet") == first.get("SpecificCharacterSet")
        assert match.PatientID == first.PatientID
        assert match.StudyDate == first.StudyDate
        assert match.StudyDescription == first.StudyDescription
        assert match.AccessionNumber == first.AccessionNumber
        assert int(match.NumberOfStudyRelatedSeries) == len({ds.SeriesInstanceUID for ds in study})
        assert int(match.NumberOfStudyRelatedInstances) == len(study)
        modalities = match.ModalitiesInStudy
        modalities = [modalities] if isinstance(modalities, str) else list(modalities)
        assert sorted(modalities) == sorted({ds.Modality for ds in study})
    names = {str(m.PatientName) for m in matches.values()}
    assert {"Müller^Jürgen", "Yamada^Tarou=山田^太郎"} <= names


def test_absent_attribute_is_returned_empty(associate: Callable[..., Association]) -> None:
    matches = _find(associate(STUDY_FIND), _query("STUDY", StudyInstanceUID="", OtherPatientIDs=""))
    assert matches
    assert all("OtherPatientIDs" in m and not m.OtherPatientIDs for m in matches)


@pytest.mark.parametrize(
    ("charset", "pattern", "patient_ids"),
    [
        ("ISO_IR 100", "Müller*", {"PID-1001"}),
        ("ISO_IR 192", "山田*", {"PID-1002"}),
        ("ISO_IR 192", "Yamada^Tarou", {"PID-1002"}),
        (None, "doe^*", {"PID-1003"}),  # PN matching ignores case
        (None, "DOE^JANE", {"PID-1003"}),
        (None, "?oe^Jane", {"PID-1003"}),
        (None, "*^J*", {"PID-1001", "PID-1003", "PID-1004"}),
        (None, "Nobody*", set()),
    ],
)
def test_patient_name_wildcards(
    associate: Callable[..., Association],
    charset: str | None,
    pattern: str,
    patient_ids: set[str],
) -> None:
    query = _query("STUDY", charset, StudyInstanceUID="", PatientName=pattern, PatientID="")
    assert {m.PatientID for m in _find(associate(STUDY_FIND), query)} == patient_ids


def test_non_name_matching_is_case_sensitive(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    assoc = associate(STUDY_FIND)
    upper = _find(assoc, _query("STUDY", StudyInstanceUID="", StudyDescription="CT*"))
    assert _study_uids(upper) == _uids_where(expected, lambda ds: ds.StudyDescription.startswith("CT"))
    assert upper
    assert _find(assoc, _query("STUDY", StudyInstanceUID="", StudyDescription="ct*")) == []


@pytest.mark.parametrize("date_range", ["20190101-20201231", "20210101-", "-20181231", "20190312"])
def test_study_date_range(
    associate: Callable[..., Association], expected: list[list[Dataset]], date_range: str
) -> None:
    start, _, end = date_range.partition("-") if "-" in date_range else (date_range, "", date_range)
    wanted = _uids_where(
        expected, lambda ds: (not start or ds.StudyDate >= start) and (not end or ds.StudyDate <= end)
    )
    matches = _find(associate(STUDY_FIND), _query("STUDY", StudyInstanceUID="", StudyDate=date_range))
    assert wanted
    assert _study_uids(matches) == wanted


def test_study_time_range(associate: Callable[..., Association], expected: list[list[Dataset]]) -> None:
    times = sorted(s[0].StudyTime for s in expected)
    low, high = times[1], times[-2]
    # An hour-only upper bound takes in the whole hour.
    time_range = f"{low}-{high[:2]}"
    wanted = _uids_where(expected, lambda ds: low <= ds.StudyTime < f"{int(high[:2]) + 1:02d}")
    matches = _find(associate(STUDY_FIND), _query("STUDY", StudyInstanceUID="", StudyTime=time_range))
    assert len(wanted) >= 3
    assert _study_uids(matches) == wanted


def test_study_uid_list(associate: Callable[..., Association], expected: list[list[Dataset]]) -> None:
    wanted = [str(expected[0][0].StudyInstanceUID), str(expected[3][0].StudyInstanceUID)]
    matches = _find(associate(STUDY_FIND), _query("STUDY", StudyInstanceUID=wanted, PatientID=""))
    assert _study_uids(matches) == set(wanted)


def test_modalities_in_study_matching(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    query = _query("STUDY", StudyInstanceUID="", ModalitiesInStudy="MR")
    matches = _find(associate(STUDY_FIND), query)
    assert _study_uids(matches) == {
        str(s[0].StudyInstanceUID) for s in expected if any(ds.Modality == "MR" for ds in s)
    }


def test_series_level(associate: Callable[..., Association], expected: list[list[Dataset]]) -> None:
    study = expected[3]  # the mixed CT + MR study
    query = _query(
        "SERIES",
        StudyInstanceUID=study[0].StudyInstanceUID,
        SeriesInstanceUID="",
        Modality="",
        SeriesNumber="",
        SeriesDescription="",
        NumberOfSeriesRelatedInstances="",
    )
    matches = _find(associate(STUDY_FIND), query)
    wanted = {
        str(ds.SeriesInstanceUID): (ds.Modality, ds.SeriesDescription, sum(
            1 for other in study if other.SeriesInstanceUID == ds.SeriesInstanceUID
        ))
        for ds in study
    }
    got = {
        str(m.SeriesInstanceUID): (m.Modality, m.SeriesDescription, int(m.NumberOfSeriesRelatedInstances))
        for m in matches
    }
    assert got == wanted
    assert all(m.QueryRetrieveLevel == "SERIES" for m in matches)


def test_series_level_by_modality(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    study = expected[3]
    query = _query("SERIES", StudyInstanceUID=study[0].StudyInstanceUID, SeriesInstanceUID="", Modality="CT")
    matches = _find(associate(STUDY_FIND), query)
    assert {str(m.SeriesInstanceUID) for m in matches} == {
        str(ds.SeriesInstanceUID) for ds in study if ds.Modality == "CT"
    }


def test_image_level(associate: Callable[..., Association], expected: list[list[Dataset]]) -> None:
    study = expected[0]
    series_uid = study[0].SeriesInstanceUID
    query = _query(
        "IMAGE",
        StudyInstanceUID=study[0].StudyInstanceUID,
        SeriesInstanceUID=series_uid,
        SOPInstanceUID="",
        SOPClassUID="",
        InstanceNumber="",
    )
    matches = _find(associate(STUDY_FIND), query)
    wanted = {str(ds.SOPInstanceUID): (ds.SOPClassUID, ds.InstanceNumber) for ds in study
              if ds.SeriesInstanceUID == series_uid}
    assert {str(m.SOPInstanceUID): (m.SOPClassUID, int(m.InstanceNumber)) for m in matches} == wanted


def test_patient_root_patient_level(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    query = _query("PATIENT", PatientID="", PatientName="", NumberOfPatientRelatedStudies="",
                   NumberOfPatientRelatedInstances="")
    matches = {m.PatientID: m for m in _find(associate(PATIENT_FIND), query, PATIENT_FIND)}
    assert set(matches) == {p.patient_id for p in PATIENTS}
    for patient in PATIENTS:
        studies = [s for s in expected if s[0].PatientID == patient.patient_id]
        match = matches[patient.patient_id]
        assert str(match.PatientName) == patient.name
        assert int(match.NumberOfPatientRelatedStudies) == len(studies)
        assert int(match.NumberOfPatientRelatedInstances) == sum(len(s) for s in studies)


def test_patient_root_study_level(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    query = _query("STUDY", PatientID="PID-1001", StudyInstanceUID="")
    matches = _find(associate(PATIENT_FIND), query, PATIENT_FIND)
    assert _study_uids(matches) == _uids_where(expected, lambda ds: ds.PatientID == "PID-1001")


def test_study_root_refuses_patient_level(associate: Callable[..., Association]) -> None:
    responses = list(associate(STUDY_FIND).send_c_find(_query("PATIENT", PatientID=""), STUDY_FIND))
    assert [status.Status for status, _ in responses] == [0xA900]


# ---------------------------------------------------------------- C-GET and C-MOVE


def _get_association(associate: Callable[..., Association], received: list[Dataset]) -> Association:
    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = _scu()
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in (CTImageStorage, MRImageStorage):
        ae.add_requested_context(sop_class)
    roles = [build_role(sop_class, scp_role=True) for sop_class in (CTImageStorage, MRImageStorage)]
    return associate(ae=ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])


def _final_status(responses: Iterator[tuple[Dataset, Dataset | None]]) -> Dataset:
    statuses = [status for status, _ in responses]
    return statuses[-1]


def _assert_same_instances(received: list[Dataset], study: list[Dataset]) -> None:
    by_uid = {str(ds.SOPInstanceUID): ds for ds in received}
    assert len(received) == len(study)
    assert set(by_uid) == {str(ds.SOPInstanceUID) for ds in study}
    for original in study:
        copy = by_uid[str(original.SOPInstanceUID)]
        assert copy.PixelData == original.PixelData
        assert str(copy.PatientName) == str(original.PatientName)


@pytest.mark.parametrize("study_index", [0, 2])  # Latin-1 CT and UTF-8 MR studies
def test_get_study_returns_every_instance(
    associate: Callable[..., Association], expected: list[list[Dataset]], study_index: int
) -> None:
    study = expected[study_index]
    received: list[Dataset] = []
    assoc = _get_association(associate, received)
    query = _query("STUDY", StudyInstanceUID=study[0].StudyInstanceUID)
    final = _final_status(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == len(study)
    _assert_same_instances(received, study)


def test_get_series(associate: Callable[..., Association], expected: list[list[Dataset]]) -> None:
    study = expected[3]
    series = [ds for ds in study if ds.Modality == "MR"]
    received: list[Dataset] = []
    assoc = _get_association(associate, received)
    query = _query("SERIES", StudyInstanceUID=study[0].StudyInstanceUID,
                   SeriesInstanceUID=series[0].SeriesInstanceUID)
    final = _final_status(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assert final.Status == 0x0000
    _assert_same_instances(received, series)


def test_get_without_unique_key_is_refused(associate: Callable[..., Association]) -> None:
    received: list[Dataset] = []
    assoc = _get_association(associate, received)
    query = _query("STUDY", StudyInstanceUID="")
    final = _final_status(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assert final.Status == 0xA900
    assert received == []


def test_move_delivers_every_instance(
    associate: Callable[..., Association], expected: list[list[Dataset]], destination: Destination
) -> None:
    study = expected[3]
    destination.received.clear()
    assoc = associate(StudyRootQueryRetrieveInformationModelMove)
    query = _query("STUDY", StudyInstanceUID=study[0].StudyInstanceUID)
    responses = assoc.send_c_move(query, DESTINATION_AET, StudyRootQueryRetrieveInformationModelMove)
    final = _final_status(responses)
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == len(study)
    _assert_same_instances(destination.received, study)


def test_move_to_unknown_destination_fails(
    associate: Callable[..., Association], expected: list[list[Dataset]]
) -> None:
    assoc = associate(StudyRootQueryRetrieveInformationModelMove)
    query = _query("STUDY", StudyInstanceUID=expected[0][0].StudyInstanceUID)
    responses = assoc.send_c_move(query, "NOSUCHAET", StudyRootQueryRetrieveInformationModelMove)
    assert _final_status(responses).Status == 0xA801


# ---------------------------------------------------------------- C-STORE and the folder


def test_store_then_find_and_reload(tmp_path: Path) -> None:
    new_study = generate_study(random.Random(7), n_series=1, instances_per_series=2, modalities=["MR"])
    port = _free_port()
    with _running(serve(tmp_path, port=port, block=False)):
        scu = _scu()
        scu.add_requested_context(MRImageStorage)
        scu.add_requested_context(STUDY_FIND)
        assoc = scu.associate("127.0.0.1", port, ae_title=PACS_AET)
        assert assoc.is_established
        try:
            for ds in new_study:
                assert assoc.send_c_store(ds).Status == 0x0000
            query = _query("IMAGE", StudyInstanceUID=new_study[0].StudyInstanceUID, SOPInstanceUID="")
            found = {str(m.SOPInstanceUID) for m in _find(assoc, query)}
        finally:
            assoc.release()
    assert found == {str(ds.SOPInstanceUID) for ds in new_study}
    seeded = sum(len(s) for s in sample_studies())
    assert len(list(tmp_path.glob("*.dcm"))) == seeded + len(new_study)

    # A restart indexes the folder as it is: the stored study is there, nothing is re-seeded.
    port = _free_port()
    with _running(serve(tmp_path, port=port, block=False)):
        scu = _scu()
        scu.add_requested_context(STUDY_FIND)
        assoc = scu.associate("127.0.0.1", port, ae_title=PACS_AET)
        try:
            matches = _find(assoc, _query("STUDY", StudyInstanceUID="", NumberOfStudyRelatedInstances=""))
        finally:
            assoc.release()
    counts = {str(m.StudyInstanceUID): int(m.NumberOfStudyRelatedInstances) for m in matches}
    assert counts[str(new_study[0].StudyInstanceUID)] == len(new_study)
    assert len(counts) == len(sample_studies()) + 1
    assert len(list(tmp_path.glob("*.dcm"))) == seeded + len(new_study)


def test_no_seed_leaves_folder_empty(tmp_path: Path) -> None:
    port = _free_port()
    with _running(serve(tmp_path, port=port, seed=False, block=False)):
        scu = _scu()
        scu.add_requested_context(STUDY_FIND)
        assoc = scu.associate("127.0.0.1", port, ae_title=PACS_AET)
        try:
            assert _find(assoc, _query("STUDY", StudyInstanceUID="")) == []
        finally:
            assoc.release()
    assert list(tmp_path.iterdir()) == []


def test_pacing_makes_the_sample_pacs_behave_like_a_real_one(tmp_path: Path, expected: list[list[Dataset]]) -> None:
    """--latency-ms waits once per C-GET/C-MOVE before the first instance; --throughput-mb-s caps the rate."""
    from dicomrst.sample_pacs.handlers import Pacing

    study = expected[0]
    timings = {}
    for name, pacing in (("plain", None), ("latency", Pacing(latency_seconds=0.4)),
                         ("throughput", Pacing(bytes_per_second=200_000))):
        port = _free_port()
        with _running(serve(tmp_path / name, aet=PACS_AET, port=port, block=False, pacing=pacing)):
            ae = _scu()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
            for sop_class in (CTImageStorage, MRImageStorage):
                ae.add_requested_context(sop_class)
            received: list[Dataset] = []
            roles = [build_role(sop_class, scp_role=True) for sop_class in (CTImageStorage, MRImageStorage)]
            assoc = ae.associate("127.0.0.1", port, ae_title=PACS_AET, ext_neg=roles,
                                 evt_handlers=[(evt.EVT_C_STORE, lambda event, got=received: got.append(event.dataset) or 0)])
            started = time.perf_counter()
            final = _final_status(assoc.send_c_get(_query("STUDY", StudyInstanceUID=study[0].StudyInstanceUID),
                                                   StudyRootQueryRetrieveInformationModelGet))
            timings[name] = time.perf_counter() - started
            assoc.release()
            assert final.Status == 0x0000 and len(received) == len(study)
    from pydicom import dcmread

    size = sum(path.stat().st_size for path in (tmp_path / "throughput").rglob("*.dcm")
               if dcmread(path, stop_before_pixels=True).StudyInstanceUID == study[0].StudyInstanceUID)
    assert size > 0
    # The wait itself, not its difference from the plain C-GET (~0.25 s here): load on the machine slows
    # that one too (0.57 s once), and the difference then shrinks.
    assert timings["latency"] >= 0.4
    assert timings["throughput"] >= 0.9 * size / 200_000
