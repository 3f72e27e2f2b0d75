"""QIDO-RS through the gateway (gunicorn, gevent workers) against a real Orthanc."""
from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.integration.conftest import HUNG_TIMEOUT_MS, KnownData
from tests.integration.dicom_json import person_name, tag, value, values
from tests.peers import Gateway, Orthanc


def qido(gateway: Gateway, path: str, aet: str = "ORTHANC", **kwargs) -> requests.Response:
    return requests.get(f"{gateway.url}/aets/{aet}{path}", timeout=30, **kwargs)


def search(gateway: Gateway, path: str, params=None) -> list[dict]:
    response = qido(gateway, path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/dicom+json")
    return response.json()


def orthanc_qido(orthanc: Orthanc, path: str, params: dict) -> list[dict]:
    # Orthanc's plugin does not decode %2A, so wildcards go unencoded.
    query = urllib.parse.urlencode(params, safe="*?^,")
    response = requests.get(f"{orthanc.dicomweb_url}{path}?{query}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def uids(matches: list[dict], keyword: str = "StudyInstanceUID") -> set[str]:
    return {value(match, keyword) for match in matches}


def test_aets_lists_configured_names_in_order(gateway: Gateway):
    response = requests.get(f"{gateway.url}/aets", timeout=5)
    assert response.status_code == 200
    assert response.json() == ["ORTHANC", "ORTHANCGET", "DOWN", "HUNG", "STORESCP"]


def test_health_check_echoes_for_real(gateway: Gateway):
    healthy = requests.get(f"{gateway.url}/aets/ORTHANC", timeout=10)
    assert healthy.status_code == 200 and "C-ECHO" in healthy.text
    started = time.monotonic()
    down = requests.get(f"{gateway.url}/aets/DOWN", timeout=10)
    assert down.status_code == 503 and "cannot connect" in down.json()["error"]
    assert time.monotonic() - started < 2


def test_health_of_a_hung_pacs_is_503_within_its_timeout(gateway: Gateway):
    started = time.monotonic()
    hung = requests.get(f"{gateway.url}/aets/HUNG", timeout=10)
    elapsed = time.monotonic() - started
    assert hung.status_code == 503 and "did not answer" in hung.json()["error"]
    assert HUNG_TIMEOUT_MS / 1000 * 0.9 <= elapsed < HUNG_TIMEOUT_MS / 1000 + 2


@pytest.mark.parametrize("path", ["", "/studies", "/studies/1.2.3/series", "/instances", "/nonsense"])
def test_unknown_aet_is_404_json(gateway: Gateway, path: str):
    response = qido(gateway, path, aet="NOBODY")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown AET 'NOBODY'"}


def test_unknown_route_under_a_known_aet_is_404_json(gateway: Gateway):
    response = qido(gateway, "/studies/1.2.3/nonsense")
    assert response.status_code == 404 and "no such resource" in response.json()["error"]


def test_all_studies_with_default_attributes(gateway: Gateway, known_data: KnownData):
    matches = search(gateway, "/studies")
    assert uids(matches) == known_data.study_uids
    muller = next(m for m in matches if value(m, "PatientID") == "PID-1001")
    study = known_data.study(0)
    assert person_name(muller) == "Müller^Jürgen"
    assert value(muller, "StudyDate") == "20190312"
    assert value(muller, "AccessionNumber") == study[0].AccessionNumber
    assert value(muller, "NumberOfStudyRelatedSeries") == 2
    assert value(muller, "NumberOfStudyRelatedInstances") == 4
    assert values(muller, "ModalitiesInStudy") == ["CT"]
    assert value(muller, "RetrieveURL") == f"{gateway.url}/aets/ORTHANC/studies/{study[0].StudyInstanceUID}"
    for keyword in ("StudyTime", "PatientBirthDate", "PatientSex", "StudyID", "ReferringPhysicianName"):
        assert tag(keyword) in muller, keyword


def test_non_ascii_names_decode(gateway: Gateway):
    yamada = search(gateway, "/studies", {"PatientID": "PID-1002"})
    assert [person_name(m) for m in yamada] == ["Yamada^Tarou=山田^太郎"]
    assert value(yamada[0], "SpecificCharacterSet") in (None, "ISO_IR 192")


def test_matching_rules(gateway: Gateway, known_data: KnownData):
    doe_studies = {study[0].StudyInstanceUID for study in known_data.studies if study[0].PatientID == "PID-1003"}
    assert uids(search(gateway, "/studies", {"PatientName": "Doe*"})) == doe_studies
    assert uids(search(gateway, "/studies", {"PatientName": "D?e^Jane"})) == doe_studies
    assert uids(search(gateway, "/studies", {"00100020": "PID-1003"})) == doe_studies
    in_2020s = search(gateway, "/studies", {"StudyDate": "20200101-20221231"})
    assert {value(m, "StudyDate") for m in in_2020s} == {"20200115", "20221130"}
    assert {value(m, "StudyDate") for m in search(gateway, "/studies", {"StudyDate": "20230101-"})} == {"20230102"}
    wanted = [known_data.study(1)[0].StudyInstanceUID, known_data.study(3)[0].StudyInstanceUID]
    assert uids(search(gateway, "/studies", {"StudyInstanceUID": ",".join(wanted)})) == set(wanted)
    assert search(gateway, "/studies", {"PatientName": "Nobody*"}) == []


def test_percent_encoded_values_are_decoded(gateway: Gateway, known_data: KnownData):
    response = qido(gateway, "/studies?PatientName=Smith%5EJohn%2A")
    assert response.status_code == 200
    assert uids(response.json()) == {known_data.study(3)[0].StudyInstanceUID}


def test_includefield_limit_offset(gateway: Gateway, known_data: KnownData):
    matches = search(gateway, "/studies", [("includefield", "StudyDescription,00080080"), ("includefield", "PatientAge")])
    generated = next(m for m in matches if value(m, "PatientID") == "PID-1004")
    assert value(generated, "StudyDescription") == known_data.study(3)[0].StudyDescription
    assert value(generated, "InstitutionName") == "dicomrst Sample Hospital"
    everything = search(gateway, "/studies", {"includefield": "all"})
    assert len(everything) == len(known_data.study_uids)
    ordered = search(gateway, "/studies")
    page = search(gateway, "/studies", {"offset": 2, "limit": 3})
    assert [value(m, "StudyInstanceUID") for m in page] == [value(m, "StudyInstanceUID") for m in ordered[2:5]]
    assert search(gateway, "/studies", {"offset": 100}) == []


def test_series_and_instances_resources(gateway: Gateway, known_data: KnownData):
    study = known_data.study(2)
    study_uid = study[0].StudyInstanceUID
    series = search(gateway, f"/studies/{study_uid}/series")
    assert uids(series, "SeriesInstanceUID") == {d.SeriesInstanceUID for d in study}
    assert {value(s, "Modality") for s in series} == {"CT", "MR"}
    assert all(value(s, "NumberOfSeriesRelatedInstances") == 2 for s in series)
    series_uid = study[0].SeriesInstanceUID
    ct = next(s for s in series if value(s, "SeriesInstanceUID") == series_uid)
    assert value(ct, "RetrieveURL") == f"{gateway.url}/aets/ORTHANC/studies/{study_uid}/series/{series_uid}"

    instances = search(gateway, f"/studies/{study_uid}/series/{series_uid}/instances")
    assert uids(instances, "SOPInstanceUID") == {d.SOPInstanceUID for d in study if d.SeriesInstanceUID == series_uid}
    first = next(i for i in instances if value(i, "InstanceNumber") == 1)
    assert value(first, "Rows") == 16 and value(first, "SOPClassUID") == study[0].SOPClassUID
    assert value(first, "RetrieveURL").endswith(f"/series/{series_uid}/instances/{value(first, 'SOPInstanceUID')}")

    study_instances = search(gateway, f"/studies/{study_uid}/instances")
    assert uids(study_instances, "SOPInstanceUID") == {d.SOPInstanceUID for d in study}
    # Study's Instances carries the series attributes too (PS3.18 10.6.3.3).
    assert {value(i, "Modality") for i in study_instances} == {"CT", "MR"}


def test_unscoped_series_and_instances(gateway: Gateway, known_data: KnownData):
    mr_series = search(gateway, "/series", {"Modality": "MR"})
    generated_mr = {d.SeriesInstanceUID for study in known_data.studies for d in study if d.Modality == "MR"}
    assert generated_mr <= uids(mr_series, "SeriesInstanceUID")
    assert all(value(s, "Modality") == "MR" for s in mr_series)
    sop_uid = known_data.study(4)[1].SOPInstanceUID
    found = search(gateway, "/instances", {"SOPInstanceUID": sop_uid})
    assert uids(found, "SOPInstanceUID") == {sop_uid}
    assert value(found[0], "StudyInstanceUID") == known_data.study(4)[0].StudyInstanceUID


def test_xml_when_asked(gateway: Gateway, known_data: KnownData):
    response = qido(gateway, "/studies", params={"PatientID": "PID-1004"},
                    headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    assert response.status_code == 200
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/related") and 'type="application/dicom+xml"' in content_type
    boundary = content_type.split("boundary=")[1].strip('"')
    parts = [p for p in response.content.split(f"--{boundary}".encode()) if b"NativeDicomModel" in p]
    assert len(parts) == 1
    body = parts[0].split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")
    root = ElementTree.fromstring(body)
    namespace = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"
    study_uid = root.find(f"{namespace}DicomAttribute[@keyword='StudyInstanceUID']/{namespace}Value")
    assert study_uid is not None and study_uid.text == known_data.study(3)[0].StudyInstanceUID


def test_json_for_application_json_and_406_otherwise(gateway: Gateway):
    assert qido(gateway, "/studies", headers={"Accept": "application/json"}).headers["Content-Type"].startswith(
        "application/dicom+json")
    refused = qido(gateway, "/studies", headers={"Accept": "image/png"})
    assert refused.status_code == 406 and "error" in refused.json()


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("NotAnAttribute=1", "NotAnAttribute"),
        ("StudyDate=2020-01-01", "StudyDate"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("offset=x", "offset"),
        ("StudyInstanceUID=1.2.abc", "StudyInstanceUID"),
        ("includefield=Nonsense", "Nonsense"),
    ],
)
def test_bad_queries_are_400_with_the_reason(gateway: Gateway, query: str, fragment: str):
    response = qido(gateway, f"/studies?{query}")
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_bad_uid_in_the_path_is_400(gateway: Gateway):
    response = qido(gateway, "/studies/1.2.x/series")
    assert response.status_code == 400 and "1.2.x" in response.json()["error"]


@pytest.mark.parametrize("fuzzy", ["true", "false", "perhaps"])
def test_fuzzymatching_is_never_an_error(gateway: Gateway, known_data: KnownData, fuzzy: str):
    matches = search(gateway, "/studies", {"PatientName": "Smith*", "fuzzymatching": fuzzy})
    assert known_data.study(3)[0].StudyInstanceUID in uids(matches)


def test_a_pacs_that_is_down_is_503_quickly(gateway: Gateway):
    started = time.monotonic()
    response = qido(gateway, "/studies", aet="DOWN")
    assert response.status_code == 503 and "cannot connect" in response.json()["error"]
    assert time.monotonic() - started < 2


def test_a_hung_pacs_is_504_within_the_timeout_and_others_keep_serving(gateway: Gateway):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        hung = pool.submit(qido, gateway, "/studies", "HUNG")
        time.sleep(0.2)
        healthy = [pool.submit(qido, gateway, "/studies") for _ in range(3)]
        assert all(f.result().status_code == 200 for f in healthy)
        assert time.monotonic() - started < HUNG_TIMEOUT_MS / 1000
        response = hung.result()
        elapsed = time.monotonic() - started
    assert response.status_code == 504 and "did not answer" in response.json()["error"]
    assert elapsed < HUNG_TIMEOUT_MS / 1000 + 2


def test_pool_size_holds_across_workers(gateway: Gateway):
    """HUNG allows one association; several workers serve the requests, and all but one must wait for
    the slot and give up after pool.timeout with 503."""
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: qido(gateway, "/studies", aet="HUNG"), range(3)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [503, 503, 504], [r.text for r in responses]
    busy = [r for r in responses if r.status_code == 503]
    assert all("in use" in r.json()["error"] and r.headers.get("Retry-After") for r in busy)


def test_association_is_freed_when_a_page_ends_early(gateway: Gateway):
    # pool.size is 4: more limited queries than that in a row only succeed if each gives its slot back.
    for _ in range(10):
        assert len(search(gateway, "/instances", {"limit": 1})) == 1


def test_forwarded_headers_from_a_trusted_proxy_shape_retrieve_urls(gateway: Gateway, known_data: KnownData):
    response = qido(gateway, "/studies", params={"PatientID": "PID-1004"}, headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org", "X-Forwarded-Prefix": "/dicomweb"})
    study_uid = known_data.study(3)[0].StudyInstanceUID
    assert value(response.json()[0], "RetrieveURL") == (
        f"https://pacs.example.org/dicomweb/aets/ORTHANC/studies/{study_uid}")


def test_dicomweb_client_searches(gateway: Gateway, known_data: KnownData):
    client = DICOMwebClient(url=f"{gateway.url}/aets/ORTHANC")
    studies = client.search_for_studies(search_filters={"PatientID": "PID-1001"})
    assert uids(studies) == {known_data.study(0)[0].StudyInstanceUID}
    series = client.search_for_series(study_instance_uid=known_data.study(0)[0].StudyInstanceUID)
    assert len(series) == 2


COMPARED_STUDY_ATTRIBUTES = ("PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                             "AccessionNumber", "StudyID", "NumberOfStudyRelatedSeries",
                             "NumberOfStudyRelatedInstances")


@pytest.mark.parametrize("params", [
    {}, {"PatientName": "Doe*"}, {"StudyDate": "20190101-20201231"}, {"PatientID": "PID-1002"},
    {"ModalitiesInStudy": "MR"},
])
def test_studies_agree_with_orthanc_dicomweb(gateway: Gateway, orthanc: Orthanc, params: dict):
    ours = search(gateway, "/studies", params)
    reference = orthanc_qido(orthanc, "/studies", params)
    assert uids(ours) == uids(reference)
    by_uid = {value(m, "StudyInstanceUID"): m for m in reference}
    for match in ours:
        theirs = by_uid[value(match, "StudyInstanceUID")]
        for keyword in COMPARED_STUDY_ATTRIBUTES:
            assert value(match, keyword) == value(theirs, keyword), keyword
        assert person_name(match) == person_name(theirs)
        assert set(values(match, "ModalitiesInStudy")) == set(values(theirs, "ModalitiesInStudy"))


@pytest.mark.parametrize("params", [{"Modality": "CT"}, {"SeriesNumber": "1"}])
def test_series_agree_with_orthanc_dicomweb(gateway: Gateway, orthanc: Orthanc, params: dict):
    ours = search(gateway, "/series", params)
    reference = orthanc_qido(orthanc, "/series", params)
    assert uids(ours, "SeriesInstanceUID") == uids(reference, "SeriesInstanceUID")
    by_uid = {value(m, "SeriesInstanceUID"): m for m in reference}
    for match in ours:
        theirs = by_uid[value(match, "SeriesInstanceUID")]
        for keyword in ("Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances"):
            assert value(match, keyword) == value(theirs, keyword), keyword


def test_c_find_bookkeeping_is_not_passed_on(gateway: Gateway):
    assert all(tag("QueryRetrieveLevel") not in match for match in search(gateway, "/studies"))


def test_private_attributes_reach_the_pacs(gateway: Gateway, known_data: KnownData):
    """A private return key (with its creator) is a valid C-FIND for a real PACS: the search still
    answers every study, in ascending tag order."""
    matches = search(gateway, "/studies", {"includefield": "00091001"})
    assert uids(matches) == known_data.study_uids
    assert all(list(match) == sorted(match) for match in matches)
    narrowed = search(gateway, "/studies", {"00090010": "NO SUCH CREATOR", "PatientID": "PID-1001"})
    assert {value(match, "PatientID") for match in narrowed} <= {"PID-1001"}


def test_fuzzymatching_a_pacs_did_not_agree_to_is_a_warning(gateway: Gateway):
    """Orthanc answers no C-FIND extended negotiation: it agreed to no fuzzy matching (PS3.18 8.3.4.1)."""
    response = requests.get(f"{gateway.url}/aets/ORTHANC/studies",
                            params={"PatientName": "smith*", "fuzzymatching": "true"}, timeout=30)
    assert response.status_code == 200
    host = gateway.url.split("//", 1)[1]
    assert response.headers["Warning"] == (
        f'299 {host}: "The fuzzymatching parameter is not supported. Only literal matching has been performed."')
    for params in ({"PatientName": "Smith*"}, {"PatientName": "Smith*", "fuzzymatching": "false"}):
        assert "Warning" not in requests.get(f"{gateway.url}/aets/ORTHANC/studies", params=params,
                                             timeout=30).headers


def _chunks_of(response: requests.Response) -> list[bytes]:
    return list(response.raw.read_chunked(decode_content=False))


def test_matches_at_hand_leave_in_fewer_writes(gateway: Gateway, known_data: KnownData):
    """Study rows are read ahead to be completed (complete-attributes), so they are at hand: they leave
    in fewer HTTP chunks than there are matches, and the JSON is whole."""
    response = qido(gateway, "/studies", stream=True)
    chunks = _chunks_of(response)
    matches = json.loads(b"".join(chunks))
    assert len(matches) >= 3 and len(chunks) < len(matches)
