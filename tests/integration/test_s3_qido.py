"""QIDO-RS on S3 AETs through the bucket's index, on SQLite and on PostgreSQL, compared query by query
with the same search through the gateway on the sample PACS holding the same studies: the same
query means the same on a bucket as on a PACS.

The bucket (moto's S3 server) is filled with boto3 and indexed by ``dicomrst index``; one object in it
is not DICOM. Answers are compared as sets of DICOM JSON objects (the order of matches is each origin's
own), with RetrieveURL's AET and RetrieveAETitle set aside.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pydicom import Dataset

from dicomrst.sample_pacs.studies import generate_study, sample_studies
from tests.integration.dicom_json import tag, value
from tests.peers import Gateway, MotoS3, Postgres, free_port, gateway_config, part10, port_is_free, wait_until

BUCKET = "qido-compare"
INDEXED_AETS = ("S3LITE", "S3PG")


@dataclass
class Setup:
    gateway: Gateway
    studies: list[list[Dataset]]
    config_path: Path
    moto: MotoS3
    index_output: dict[str, str]


def key_of(dataset: Dataset) -> str:
    return f"{dataset.StudyInstanceUID}/{dataset.SeriesInstanceUID}/{dataset.SOPInstanceUID}.dcm"


def the_studies() -> list[list[Dataset]]:
    extra = [generate_study(random.Random(seed), n_series=2, instances_per_series=2, rows=8, columns=8)
             for seed in (71, 72, 73)]
    return sample_studies() + extra


def run_index(aet: str, config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomrst.cli", "index", aet, "--config", str(config_path),
                           "--no-progress"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[Setup]:
    studies = the_studies()
    storage = tmp_path_factory.mktemp("sample-storage")
    for number, dataset in enumerate(d for study in studies for d in study):
        (storage / f"{number:04d}.dcm").write_bytes(part10(dataset))
    pacs_port = free_port()
    pacs = subprocess.Popen([sys.executable, "-m", "dicomrst.cli", "sample-pacs", "--storage", str(storage),
                             "--no-seed", "--aet", "SAMPLE", "--port", str(pacs_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto = MotoS3(tmp_path_factory.mktemp("moto"))
    moto.start()
    gateway: Gateway | None = None
    try:
        client = moto.client()
        client.create_bucket(Bucket=BUCKET)
        for dataset in (d for study in studies for d in study):
            client.put_object(Bucket=BUCKET, Key=key_of(dataset), Body=part10(dataset))
        client.put_object(Bucket=BUCKET, Key="notes/README.txt", Body=b"not an instance")
        s3 = {"backend": "S3", "endpoint": moto.endpoint, "endpoint-style": "path", "bucket": BUCKET,
              "region": "us-east-1", "credentials": {"access-key": "testing", "secret-key": "testing"}}
        config = gateway_config([
            {"aet": "SAMPLE", "host": "127.0.0.1", "port": pacs_port},
            {"aet": "S3LITE", **s3},
            {"aet": "S3PG", **s3, "index": postgres.create_database("qido_compare")},
        ])
        directory = tmp_path_factory.mktemp("s3-qido-gateway")
        config.setdefault("server", {})["cache"] = {"path": str(directory / "cache")}
        config_path = directory / "indexing.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        outputs = {}
        for aet in INDEXED_AETS:
            indexed = run_index(aet, config_path)
            assert indexed.returncode == 0, indexed.stderr
            outputs[aet] = indexed.stdout
        wait_until(lambda: not port_is_free(pacs_port), 30, "the sample PACS", pacs)
        gateway = Gateway(config, directory, workers=2)
        gateway.start()
        yield Setup(gateway, studies, config_path, moto, outputs)
    finally:
        if gateway is not None:
            gateway.stop()
        moto.stop()
        pacs.terminate()
        pacs.wait(10)


def get(setup: Setup, aet: str, path: str, params: Any = None) -> requests.Response:
    return requests.get(f"{setup.gateway.url}/aets/{aet}{path}", params=params, timeout=30)


def comparable(response: requests.Response, aet: str) -> tuple[int, Any]:
    if response.status_code != 200:
        return response.status_code, response.json()
    matches = []
    for match in response.json():
        match.pop(tag("RetrieveAETitle"), None)
        if tag("RetrieveURL") in match:
            match[tag("RetrieveURL")]["Value"] = [url.replace(f"/aets/{aet}/", "/aets/{aet}/")
                                                  for url in match[tag("RetrieveURL")]["Value"]]
        matches.append(json.dumps(match, sort_keys=True, ensure_ascii=False))
    return 200, sorted(matches)


def _uids(study: int, series: int | None = None) -> tuple[str, str]:
    dataset = sample_studies()[study][0 if series is None else series]
    return str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID)


STUDY, SERIES = _uids(0)
OTHER_STUDY, _ = _uids(3)

# (resource, query parameters): what the PACS tests ask, on every resource and every kind of matching.
CASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("/studies", []),
    ("/studies", [("PatientName", "Müller^Jürgen")]),
    ("/studies", [("PatientName", "müller*")]),
    ("/studies", [("PatientName", "*ller*")]),
    ("/studies", [("PatientName", "M?ller^J*")]),
    ("/studies", [("PatientName", "Yamada^Tarou")]),
    ("/studies", [("PatientName", "山田^太郎")]),
    ("/studies", [("PatientName", "Yamada^Tarou=山田^太郎")]),
    ("/studies", [("PatientName", "DOE^JANE"), ("fuzzymatching", "true")]),
    ("/studies", [("PatientName", "Smith^John^A^^")]),
    ("/studies", [("PatientName", "Smith")]),
    ("/studies", [("PatientID", "PID-1001")]),
    ("/studies", [("PatientID", "pid-1001")]),
    ("/studies", [("PatientID", "PID-100?")]),
    ("/studies", [("PatientSex", "F")]),
    ("/studies", [("PatientBirthDate", "19500101-19800101")]),
    ("/studies", [("StudyDate", "20190101-20201231")]),
    ("/studies", [("StudyDate", "20210101-")]),
    ("/studies", [("StudyDate", "-20181231")]),
    ("/studies", [("StudyDate", "20190312")]),
    ("/studies", [("StudyTime", "08-12")]),
    ("/studies", [("StudyInstanceUID", f"{STUDY},{OTHER_STUDY}")]),
    ("/studies", [("StudyInstanceUID", STUDY)]),
    ("/studies", [("ModalitiesInStudy", "MR")]),
    ("/studies", [("ModalitiesInStudy", "CT"), ("PatientID", "PID-1003")]),
    ("/studies", [("Modality", "CT")]),
    ("/studies", [("AccessionNumber", "*")]),
    ("/studies", [("ReferringPhysicianName", "welby*")]),
    ("/studies", [("StudyDescription", "CT*")]),
    ("/studies", [("StudyDescription", "ct*")]),
    ("/studies", [("includefield", "all")]),
    ("/studies", [("includefield", "StudyDescription,00081030"), ("PatientID", "PID-1002")]),
    ("/studies", [("includefield", "NumberOfPatientRelatedStudies")]),
    ("/studies", [("PatientName", "Nobody")]),
    ("/studies", [("StudyDate", "20250101-")]),
    (f"/studies/{STUDY}/series", []),
    (f"/studies/{STUDY}/series", [("Modality", "CT")]),
    (f"/studies/{STUDY}/series", [("includefield", "all")]),
    ("/series", []),
    ("/series", [("Modality", "MR")]),
    ("/series", [("SeriesNumber", "1")]),
    ("/series", [("PatientName", "Doe*")]),
    ("/series", [("SeriesDescription", "*Brain*")]),
    ("/series", [("StudyInstanceUID", STUDY)]),
    (f"/studies/{STUDY}/series/{SERIES}/instances", []),
    (f"/studies/{STUDY}/series/{SERIES}/instances", [("InstanceNumber", "2")]),
    (f"/studies/{STUDY}/series/{SERIES}/instances", [("includefield", "all")]),
    (f"/studies/{STUDY}/instances", []),
    ("/instances", []),
    ("/instances", [("SOPClassUID", "1.2.840.10008.5.1.4.1.1.4")]),
    ("/instances", [("Modality", "CT"), ("PatientID", "PID-1004")]),
    ("/instances", [("Rows", "8")]),
    ("/instances", [("includefield", "all"), ("PatientSex", "M")]),
    # refused alike, before any origin is asked
    ("/studies", [("NoSuchAttribute", "1")]),
    ("/studies", [("StudyDate", "2019")]),
    ("/studies", [("limit", "0")]),
    ("/studies", [("PatientName", "A"), ("PatientName", "B")]),
    ("/studies/1.2.x/series", []),
    ("/series", [("SOPInstanceUID", "1.2.3")]),
]


@pytest.mark.parametrize("aet", INDEXED_AETS)
@pytest.mark.parametrize("path, params", CASES, ids=[f"{path}?{params}" for path, params in CASES])
def test_the_same_answer_as_the_sample_pacs(setup: Setup, aet: str, path: str, params: list[tuple[str, str]]):
    expected = comparable(get(setup, "SAMPLE", path, params), "SAMPLE")
    found = comparable(get(setup, aet, path, params), aet)
    assert found == expected


def test_the_cases_find_some_and_not_all(setup: Setup):
    # A comparison of empty (or of whole) answers proves little.
    sizes = []
    for path, params in CASES:
        response = get(setup, "SAMPLE", path, params)
        sizes.append(len(response.json()) if response.status_code == 200 else None)
    assert sum(1 for size in sizes if size) >= 40
    assert sum(1 for size in sizes if size == 0) >= 2
    assert sum(1 for size in sizes if size is None) == 6


def test_indexing_summary_counts_instances_and_the_object_that_is_not_dicom(setup: Setup):
    instances = sum(len(study) for study in setup.studies)
    for aet in INDEXED_AETS:
        assert f"indexed {instances} " in setup.index_output[aet]
        assert "skipped 1 (not DICOM), failed 0" in setup.index_output[aet]


def test_indexing_again_reads_nothing_new(setup: Setup):
    again = run_index("S3LITE", setup.config_path)
    assert again.returncode == 0, again.stderr
    instances = sum(len(study) for study in setup.studies)
    assert "indexed 0 " in again.stdout and f"unchanged {instances + 1}," in again.stdout


@pytest.mark.parametrize("aet", INDEXED_AETS)
def test_pages_cover_every_match_once(setup: Setup, aet: str):
    everything = [value(match, "SeriesInstanceUID") for match in get(setup, aet, "/series").json()]
    assert len(everything) == len({*everything}) > 6
    paged = []
    for offset in range(0, len(everything) + 3, 3):
        page = get(setup, aet, "/series", [("limit", "3"), ("offset", str(offset))]).json()
        assert len(page) <= 3
        paged += [value(match, "SeriesInstanceUID") for match in page]
    assert paged == everything


@pytest.mark.parametrize("aet", INDEXED_AETS)
def test_a_page_with_a_key_matched_outside_sql(setup: Setup, aet: str):
    # A sequence key is matched on the header: paging is done after it, and still covers every match.
    params = [("RequestAttributesSequence.RequestedProcedureID", "*")]
    everything = [value(m, "SeriesInstanceUID") for m in get(setup, aet, "/series", params).json()]
    paged = [value(m, "SeriesInstanceUID")
             for offset in range(0, len(everything) + 2, 2)
             for m in get(setup, aet, "/series", params + [("limit", "2"), ("offset", str(offset))]).json()]
    assert paged == everything


@pytest.mark.parametrize("aet", INDEXED_AETS)
def test_aets_detail_shows_the_index(setup: Setup, aet: str):
    described = next(entry for entry in requests.get(f"{setup.gateway.url}/aets", params={"detail": "true"},
                                                     timeout=10).json() if entry["aet"] == aet)
    index = described["index"]
    assert index["studies"] >= len(setup.studies)
    assert index["url"].startswith("sqlite:///" if aet == "S3LITE" else "postgresql")


def test_the_dicomweb_client_command_line_stores_into_a_bucket_and_finds_it(setup: Setup, tmp_path: Path):
    client = str(Path(sys.executable).parent / "dicomweb_client")
    study = generate_study(random.Random(74), n_series=1, instances_per_series=2, rows=8, columns=8)
    files = []
    for number, dataset in enumerate(study):
        files.append(tmp_path / f"{number}.dcm")
        files[-1].write_bytes(part10(dataset))
    url = f"{setup.gateway.url}/aets/S3PG"
    stored = subprocess.run([client, "--url", url, "store", "instances", *map(str, files)],
                            capture_output=True, text=True, timeout=120)
    assert stored.returncode == 0, stored.stderr
    found = subprocess.run([client, "--url", url, "search", "studies", "--filter",
                            f"PatientID={study[0].PatientID}", "--filter", f"StudyInstanceUID={study[0].StudyInstanceUID}",
                            "--field", "NumberOfStudyRelatedInstances"],
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    (match,) = json.loads(found.stdout)
    assert value(match, "NumberOfStudyRelatedInstances") == 2
