"""Right answers from an older-style PACS: DCMTK's dcmqrscp answers hierarchical queries only, ignores
keys above the query level, matches person names case-sensitively and keeps no ModalitiesInStudy or
related counts (PS3.4 C.2.2.2, C.4.1.2). Every search here must return the rows Orthanc returns for the
same data, and never a row that does not match."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import KnownData, part10
from tests.integration.dicom_json import value, values
from tests.peers import DcmQrScp, Gateway, Orthanc, gateway_config, receiver_of


@pytest.fixture(scope="module")
def dcmqrscp_gateway(tmp_path_factory: pytest.TempPathFactory, known_data: KnownData,
                     orthanc: Orthanc) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("dcmqrscp")
    config = gateway_config([
        {"aet": "DCMQR", "host": "127.0.0.1", "port": 0},
        {"aet": "STRICT", "host": "127.0.0.1", "port": 0},
        {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
    ], receiver_aet="DICOMRST-DQ")
    pacs = DcmQrScp(folder / "relaxed")
    strict = DcmQrScp(folder / "strict", aet="STRICT", strict=True)
    config["aets"][0]["port"], config["aets"][1]["port"] = pacs.port, strict.port
    files = []
    for index, dataset in enumerate(instance for study in known_data.studies for instance in study):
        path = folder / f"{index:03d}.dcm"
        path.write_bytes(part10(dataset))
        files.append(path)
    for peer in (pacs, strict):
        peer.folder.mkdir(parents=True, exist_ok=True)
        peer.start({receiver_of(config)[0]: ("127.0.0.1", receiver_of(config)[1])})
        peer.store(files)
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, folder / "gateway")
    gateway.directory.mkdir()
    gateway.start()
    yield gateway
    gateway.stop()
    pacs.stop()
    strict.stop()


def search(gateway: Gateway, aet: str, path: str, **params: str) -> requests.Response:
    return requests.get(f"{gateway.url}/aets/{aet}{path}", params=params, timeout=60)


def uids(response: requests.Response, keyword: str) -> set[str]:
    assert response.status_code == 200, response.text
    return {value(match, keyword) for match in response.json()}


SEARCHES = [
    ("/series", {"PatientName": "Doe^Jane"}, "SeriesInstanceUID"),
    ("/series", {"PatientID": "PID-1001", "Modality": "CT"}, "SeriesInstanceUID"),
    ("/instances", {"PatientID": "PID-1003"}, "SOPInstanceUID"),
    ("/studies", {"ModalitiesInStudy": "CT"}, "StudyInstanceUID"),
    ("/studies", {"ModalitiesInStudy": "MR", "PatientID": "PID-1003"}, "StudyInstanceUID"),
    ("/studies", {"StudyDate": "20200101-20231231"}, "StudyInstanceUID"),
]


@pytest.mark.parametrize("aet", ["DCMQR", "STRICT"])
@pytest.mark.parametrize("path, params, keyword", SEARCHES)
def test_searches_match_what_orthanc_answers(dcmqrscp_gateway: Gateway, known_data: KnownData, aet: str, path: str,
                                             params: dict, keyword: str):
    # Orthanc also holds pydicom's real-world files, which dcmqrscp was not given.
    generated = {getattr(d, keyword) for study in known_data.studies for d in study}
    expected = uids(search(dcmqrscp_gateway, "ORTHANC", path, **params), keyword) & generated
    assert expected, "the search must match something for the comparison to mean anything"
    assert uids(search(dcmqrscp_gateway, aet, path, **params), keyword) == expected


@pytest.mark.parametrize("aet", ["DCMQR", "STRICT"])
def test_a_studys_instances_of_one_modality(dcmqrscp_gateway: Gateway, known_data: KnownData, aet: str):
    study = known_data.study(2)  # Doe: a CT series and an MR series
    path = f"/studies/{study[0].StudyInstanceUID}/instances"
    mr = {d.SOPInstanceUID for d in study if d.Modality == "MR"}
    assert uids(search(dcmqrscp_gateway, aet, path, Modality="MR"), "SOPInstanceUID") == mr
    assert uids(search(dcmqrscp_gateway, aet, path, Modality="US"), "SOPInstanceUID") == set()


def test_study_rows_carry_what_a_study_browser_needs(dcmqrscp_gateway: Gateway, known_data: KnownData):
    study = known_data.study(2)
    [row] = search(dcmqrscp_gateway, "DCMQR", "/studies", StudyInstanceUID=study[0].StudyInstanceUID).json()
    assert sorted(values(row, "ModalitiesInStudy")) == ["CT", "MR"]
    assert value(row, "NumberOfStudyRelatedSeries") == 2
    assert value(row, "NumberOfStudyRelatedInstances") == 4


def test_a_case_sensitive_pacs_says_it_did_no_fuzzy_matching(dcmqrscp_gateway: Gateway):
    """dcmqrscp agrees to no fuzzy matching: the answer says so (PS3.18 8.3.4.1) rather than widening a
    name search into a scan of the whole PACS to match without regard to case."""
    fuzzy = search(dcmqrscp_gateway, "DCMQR", "/studies", PatientName="doe*", fuzzymatching="true")
    assert fuzzy.json() == [] and "fuzzymatching parameter is not supported" in fuzzy.headers["Warning"]
    literal = search(dcmqrscp_gateway, "DCMQR", "/studies", PatientName="Doe*")
    assert {value(m, "PatientID") for m in literal.json()} == {"PID-1003"} and "Warning" not in literal.headers


def test_a_key_the_pacs_returns_no_value_for_is_named_in_a_warning(dcmqrscp_gateway: Gateway, known_data: KnownData):
    """dcmqrscp keeps no instance-level SOPClassUID: the key cannot be checked, and the answer says so."""
    study = known_data.study(0)
    response = search(dcmqrscp_gateway, "DCMQR", f"/studies/{study[0].StudyInstanceUID}/instances",
                      SOPClassUID=study[0].SOPClassUID)
    assert response.status_code == 200
    assert "SOPClassUID" in response.headers["Warning"] and "not applied" in response.headers["Warning"]
    checked = search(dcmqrscp_gateway, "ORTHANC", f"/studies/{study[0].StudyInstanceUID}/instances",
                     SOPClassUID=study[0].SOPClassUID)
    assert "Warning" not in checked.headers
