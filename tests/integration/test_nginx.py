"""The gateway behind a real nginx configured by the production sample etc/nginx/dicomrst.conf: the URLs
a client is handed name nginx (scheme, host, port, /dicomweb prefix), retrievals stream through, a
500 MB STOW passes, and base-path works behind the prefix. Each directive of the sample that matters
(buffering both ways, HTTP/1.1, body size, the X-Forwarded-* set) makes some test here fail when changed."""
from __future__ import annotations

import concurrent.futures
import random
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import generate_uid

from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import KnownData, part10
from tests.integration.dicom_json import tag, value
from tests.integration.multipart import parse_multipart
from tests.nginx_peer import SAMPLE_CONF, Nginx
from tests.peers import Gateway, Orthanc, gateway_config

BOUNDARY = "dicomrst-nginx-test"
STOW_CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
BIG_STUDY_INSTANCES = 120
BIG_UPLOAD_BYTES = 500_000_000
# The client-side forgeries nginx must overwrite (or drop) before the gateway, which trusts nginx, sees them.
FORGED_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example:444",
                  "X-Forwarded-Port": "444", "X-Forwarded-Prefix": "/evil"}


@pytest.fixture(scope="module")
def added_studies(orthanc: Orthanc) -> Iterator[list[str]]:
    """Study UIDs this module put into the session's Orthanc; removed at the end, because other modules
    compare Orthanc's whole study list with `known_data`."""
    uids: list[str] = []
    yield uids
    for study_uid in uids:
        orthanc.delete_study(study_uid)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway) -> Iterator[Nginx]:
    peer = Nginx(tmp_path_factory.mktemp("nginx"), gateway.port)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def big_study(orthanc: Orthanc, added_studies: list[str]) -> list[Dataset]:
    """~16 MB in 120 instances: a C-MOVE long enough for first and last bytes to be apart, and more than
    the socket buffers hold, so that a buffering nginx would spool it for a slow reader."""
    study = generate_study(random.Random(7001), n_series=2, instances_per_series=BIG_STUDY_INSTANCES // 2,
                           rows=256, columns=256)
    added_studies.append(study[0].StudyInstanceUID)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda dataset: orthanc.upload(part10(dataset)), study))
    return study


def stow_body(datasets: list[Dataset]) -> bytes:
    return b"".join(write_multipart([part10(d) for d in datasets], "application/dicom", BOUNDARY))


def renamed(template: Dataset) -> Dataset:
    """The same image as a new instance: Orthanc must store each part, not find it already there."""
    copy = template.copy()
    copy.file_meta = FileMetaDataset(template.file_meta)
    copy.SOPInstanceUID = generate_uid()
    copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
    return copy


def referenced(module: dict) -> dict[str, dict]:
    return {value(item, "ReferencedSOPInstanceUID"): item
            for item in module.get(tag("ReferencedSOPSequence"), {}).get("Value", [])}


def retrieve_urls(matches: list[dict]) -> list[str]:
    urls = [value(match, "RetrieveURL") for match in matches]
    assert urls and all(urls), "every match carries a RetrieveURL"
    return urls


def test_qido_retrieve_urls_name_nginx(nginx: Nginx, known_data: KnownData):
    studies_root = f"{nginx.url}/aets/ORTHANC/studies/"
    for headers in ({}, FORGED_HEADERS):
        response = requests.get(f"{nginx.url}/aets/ORTHANC/studies", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        urls = retrieve_urls(response.json())
        # A forged X-Forwarded-* from the client changes nothing: nginx sets (or drops) each of them.
        assert all(url.startswith(studies_root) for url in urls), (headers, urls)
        assert len(urls) >= len(known_data.study_uids)

    study = known_data.study(0)
    study_uid, series_uid = study[0].StudyInstanceUID, study[0].SeriesInstanceUID
    series = requests.get(f"{studies_root}{study_uid}/series", headers=FORGED_HEADERS, timeout=30).json()
    assert f"{studies_root}{study_uid}/series/{series_uid}" in retrieve_urls(series)
    instances = requests.get(f"{studies_root}{study_uid}/series/{series_uid}/instances", timeout=30).json()
    assert f"{studies_root}{study_uid}/series/{series_uid}/instances/{study[0].SOPInstanceUID}" in retrieve_urls(instances)


def test_retrieve_url_works_through_nginx(nginx: Nginx, known_data: KnownData):
    """The URL handed out is not just well-formed: following it through nginx gets the study."""
    study = known_data.study(3)
    match = requests.get(f"{nginx.url}/aets/ORTHANC/studies", params={"StudyInstanceUID": study[0].StudyInstanceUID},
                         timeout=30).json()
    response = requests.get(value(match[0], "RetrieveURL"), timeout=60)
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert sorted(str(dcmread(BytesIO(body)).SOPInstanceUID) for _, body in parts) == sorted(
        str(dataset.SOPInstanceUID) for dataset in study)


def test_metadata_bulkdata_uris_name_nginx(nginx: Nginx, known_data: KnownData):
    dataset = known_data.study(1)[0]
    instance_path = (f"/aets/ORTHANC/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
                     f"/instances/{dataset.SOPInstanceUID}")
    response = requests.get(f"{nginx.url}{instance_path}/metadata", headers=FORGED_HEADERS, timeout=60)
    assert response.status_code == 200, response.text
    bulk = response.json()[0][tag("PixelData")]["BulkDataURI"]
    assert bulk.startswith(f"{nginx.url}{instance_path}/bulkdata/"), bulk


def test_stow_response_names_nginx(nginx: Nginx, added_studies: list[str]):
    study = generate_study(random.Random(7002), n_series=1, instances_per_series=2, rows=16, columns=16)
    study_uid = study[0].StudyInstanceUID
    added_studies.append(study_uid)
    response = requests.post(f"{nginx.url}/aets/ORTHANC/studies", data=stow_body(study), timeout=60,
                             headers={"Content-Type": STOW_CONTENT_TYPE, **FORGED_HEADERS})
    assert response.status_code == 200, response.text
    module = response.json()
    assert value(module, "RetrieveURL") == f"{nginx.url}/aets/ORTHANC/studies/{study_uid}"
    stored = referenced(module)
    assert set(stored) == {str(dataset.SOPInstanceUID) for dataset in study}
    for dataset in study:
        assert value(stored[str(dataset.SOPInstanceUID)], "RetrieveURL") == (
            f"{nginx.url}/aets/ORTHANC/studies/{study_uid}/series/{dataset.SeriesInstanceUID}"
            f"/instances/{dataset.SOPInstanceUID}")


def test_wado_streams_through_nginx(nginx: Nginx, big_study: list[Dataset]):
    """End to end (gateway and nginx), the first part reaches the client while the C-MOVE is still going.
    (nginx forwards early even when buffering; the next test is the one that pins proxy_buffering off.)"""
    url = f"{nginx.url}/aets/ORTHANC/studies/{big_study[0].StudyInstanceUID}"
    chunks: list[bytes] = []
    first_chunk: float | None = None
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=60) as response:
        assert response.status_code == 200, response.text
        for chunk in response.iter_content(chunk_size=64 * 1024):
            if first_chunk is None:
                first_chunk = time.perf_counter() - started
            chunks.append(chunk)
        content_type = response.headers["Content-Type"]
    total = time.perf_counter() - started
    assert first_chunk is not None
    assert first_chunk < 0.5 * total, f"first bytes after {first_chunk:.2f} s of {total:.2f} s"
    parts = parse_multipart(content_type, b"".join(chunks))
    received = sorted(str(dcmread(BytesIO(body)).SOPInstanceUID) for _, body in parts)
    assert received == sorted(str(dataset.SOPInstanceUID) for dataset in big_study)


def test_slow_client_is_not_spooled_by_nginx(nginx: Nginx, big_study: list[Dataset]):
    """A client that reads slowly holds the gateway back instead of nginx spooling the study to disk
    (which proxy_buffering on would do, and say so in its error log)."""
    url = f"{nginx.url}/aets/ORTHANC/studies/{big_study[0].StudyInstanceUID}"
    with requests.get(url, stream=True, timeout=60) as response:
        assert response.status_code == 200, response.text
        chunks = response.iter_content(chunk_size=64 * 1024)
        first = next(chunks)
        # Long enough for nginx to have read all ~16 MB from the gateway if it were buffering.
        time.sleep(1.0)
        body = first + b"".join(chunks)
        content_type = response.headers["Content-Type"]
    assert len(parse_multipart(content_type, body)) == len(big_study)
    assert "buffered to a temporary file" not in nginx.error_log.read_text()


def chunked(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length: requests sends a generator with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_upload_limit_is_the_gateway_s(nginx: Nginx, added_studies: list[str]):
    """client_max_body_size 0: the gateway, not nginx, enforces max-upload-size (8 MB here), so the
    client gets the gateway's answers; and chunked uploads pass through nginx at all."""
    template = generate_study(random.Random(7004), n_series=1, instances_per_series=1, rows=512, columns=512)[0]
    added_studies.append(template.StudyInstanceUID)
    url = f"{nginx.url}/aets/ORTHANC/studies"
    headers = {"Content-Type": STOW_CONTENT_TYPE}

    small = [renamed(template) for _ in range(3)]
    within = requests.post(url, data=chunked(stow_body(small)), headers=headers, timeout=60)
    assert within.status_code == 200, within.text
    assert set(referenced(within.json())) == {str(dataset.SOPInstanceUID) for dataset in small}

    # ~10.5 MB: over the limit by its declared length, answered before the body is read.
    too_big = stow_body([renamed(template) for _ in range(20)])
    declared = requests.post(url, data=too_big, headers=headers, timeout=60)
    assert declared.status_code == 413
    assert "exceeds the limit" in declared.json()["error"]

    # Chunked: found out while streaming; the response module lists what was stored until then.
    streamed = requests.post(url, data=chunked(too_big), headers=headers, timeout=60)
    assert streamed.status_code == 413
    assert streamed.headers["Content-Type"].startswith("application/dicom+json")
    stored = referenced(streamed.json())
    assert stored and all(value(item, "RetrieveURL").startswith(f"{url}/") for item in stored.values())


@pytest.fixture(scope="module")
def upload_gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[Gateway]:
    """The session gateway takes 8 MB bodies at most; this one takes the big upload."""
    http: dict[str, Any] = {"max-upload-size": 600_000_000}
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}], **http)
    peer = Gateway(config, tmp_path_factory.mktemp("upload-gateway"), workers=2)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def upload_nginx(tmp_path_factory: pytest.TempPathFactory, upload_gateway: Gateway) -> Iterator[Nginx]:
    peer = Nginx(tmp_path_factory.mktemp("upload-nginx"), upload_gateway.port)
    peer.start()
    yield peer
    peer.stop()


def test_500_mb_stow_through_nginx(upload_nginx: Nginx, tmp_path: Path, added_studies: list[str]):
    template = generate_study(random.Random(7003), n_series=1, instances_per_series=1, rows=512, columns=512)[0]
    added_studies.append(template.StudyInstanceUID)
    count = -(-BIG_UPLOAD_BYTES // len(part10(template)))  # rounded up: at least 500 MB
    sop_uids: list[str] = []

    def instances() -> Iterator[bytes]:
        for _ in range(count):
            instance = renamed(template)
            sop_uids.append(str(instance.SOPInstanceUID))
            yield part10(instance)

    body_path = tmp_path / "stow-body"
    try:
        # From disk, never whole in memory: requests streams a file object with its Content-Length.
        with open(body_path, "wb") as body:
            body.writelines(write_multipart(instances(), "application/dicom", BOUNDARY))
        assert body_path.stat().st_size > BIG_UPLOAD_BYTES
        with open(body_path, "rb") as upload:
            response = requests.post(f"{upload_nginx.url}/aets/ORTHANC/studies", data=upload, timeout=120,
                                     headers={"Content-Type": STOW_CONTENT_TYPE})
    finally:
        body_path.unlink(missing_ok=True)
    assert response.status_code == 200, response.text[:500]
    module = response.json()
    stored = referenced(module)
    assert set(stored) == set(sop_uids) and len(sop_uids) == count
    assert tag("FailedSOPSequence") not in module
    assert value(module, "RetrieveURL") == f"{upload_nginx.url}/aets/ORTHANC/studies/{template.StudyInstanceUID}"
    # proxy_request_buffering off: nginx relayed the body instead of writing it to disk first.
    assert "buffered to a temporary file" not in upload_nginx.error_log.read_text()


class BasedGateway(Gateway):
    """A gateway under base-path /gw: its routes, and so the /aets that start() waits for, are under /gw."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gw"


@pytest.fixture(scope="module")
def based_gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[Gateway]:
    http: dict[str, Any] = {"base-path": "/gw"}
    # C-GET: the retrieval a RetrieveURL leads to needs no receiver of this gateway registered at Orthanc.
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"method": "get"}}], **http)
    peer = BasedGateway(config, tmp_path_factory.mktemp("based-gateway"), workers=2)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def based_nginx(tmp_path_factory: pytest.TempPathFactory, based_gateway: Gateway) -> Iterator[Nginx]:
    sample = SAMPLE_CONF.read_text()
    assert sample.count("proxy_pass http://dicomrst/;") == 1
    # What the sample's comment tells operators with a base-path to write.
    variant = sample.replace("proxy_pass http://dicomrst/;", "proxy_pass http://dicomrst/gw/;")
    peer = Nginx(tmp_path_factory.mktemp("based-nginx"), based_gateway.port, server_conf=variant)
    peer.start()
    yield peer
    peer.stop()


def test_base_path_routes_behind_nginx(based_nginx: Nginx, known_data: KnownData):
    """nginx maps /dicomweb/ onto the gateway's /gw/: every route is reached through /dicomweb."""
    listed = requests.get(f"{based_nginx.url}/aets", timeout=30)
    assert listed.status_code == 200 and listed.json() == ["ORTHANC"], listed.text
    study_uid = known_data.study(3)[0].StudyInstanceUID
    matches = requests.get(f"{based_nginx.url}/aets/ORTHANC/studies", params={"StudyInstanceUID": study_uid},
                           timeout=30)
    assert matches.status_code == 200 and len(matches.json()) == 1, matches.text


def test_base_path_retrieve_urls_behind_nginx(based_nginx: Nginx, known_data: KnownData):
    """The forwarded prefix is the external path of base-path: clients see /dicomweb, never /gw."""
    study = known_data.study(3)
    study_uid = study[0].StudyInstanceUID
    matches = requests.get(f"{based_nginx.url}/aets/ORTHANC/studies", params={"StudyInstanceUID": study_uid},
                           timeout=30).json()
    assert retrieve_urls(matches) == [f"{based_nginx.url}/aets/ORTHANC/studies/{study_uid}"]
    # And the URL works: following it through nginx gets the study.
    response = requests.get(retrieve_urls(matches)[0], timeout=60)
    assert response.status_code == 200, response.text
    assert len(parse_multipart(response.headers["Content-Type"], response.content)) == len(study)
