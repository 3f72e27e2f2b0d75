"""Two gateway hosts (two gunicorn instances, each with its own receiver and cache folder) sharing one
bucket and one PostgreSQL index: what one stores with STOW-RS, the other finds with QIDO-RS and serves
with WADO-RS at once, with no indexing in between."""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import requests
from pydicom import Dataset

from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.dicom_json import value
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, MotoS3, Postgres, gateway_config, part10

BUCKET = "shared"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[tuple[Gateway, Gateway]]:
    moto = MotoS3(tmp_path_factory.mktemp("moto"))
    moto.start()
    moto.client().create_bucket(Bucket=BUCKET)
    index = postgres.create_database("two_hosts")
    gateways = []
    try:
        for name in ("host-a", "host-b"):
            config = gateway_config([{"aet": "SHARED", "backend": "S3", "endpoint": moto.endpoint,
                                      "endpoint-style": "path", "bucket": BUCKET, "region": "us-east-1",
                                      "credentials": {"access-key": "testing", "secret-key": "testing"},
                                      "index": index}], receiver_aet=name.upper())
            gateway = Gateway(config, tmp_path_factory.mktemp(name), workers=2)
            gateways.append(gateway)
            gateway.start()
        yield gateways[0], gateways[1]
    finally:
        for gateway in gateways:
            gateway.stop()
        moto.stop()


def stow(gateway: Gateway, datasets: list[Dataset]) -> requests.Response:
    body = b"".join(write_multipart([part10(d) for d in datasets], "application/dicom", "two-hosts"))
    return requests.post(f"{gateway.url}/aets/SHARED/studies", data=body, timeout=60,
                         headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=two-hosts'})


def test_stored_on_one_host_is_found_and_served_by_the_other(hosts: tuple[Gateway, Gateway]):
    host_a, host_b = hosts
    assert host_a.config["server"]["dimse"][0]["port"] != host_b.config["server"]["dimse"][0]["port"]
    study = generate_study(random.Random(2), n_series=2, instances_per_series=3, rows=16, columns=16)
    study_uid = str(study[0].StudyInstanceUID)
    assert stow(host_a, study).status_code == 200
    (match,) = requests.get(f"{host_b.url}/aets/SHARED/studies", params={"PatientID": study[0].PatientID},
                            timeout=30).json()
    assert value(match, "StudyInstanceUID") == study_uid
    assert value(match, "NumberOfStudyRelatedSeries") == 2 and value(match, "NumberOfStudyRelatedInstances") == 6
    response = requests.get(f"{host_b.url}/aets/SHARED/studies/{study_uid}", timeout=60,
                            headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 200
    assert len(parse_multipart(response.headers["Content-Type"], response.content)) == 6


def test_stored_again_on_the_other_host_replaces_its_row(hosts: tuple[Gateway, Gateway]):
    host_a, host_b = hosts
    study = generate_study(random.Random(3), n_series=1, instances_per_series=2, rows=16, columns=16)
    assert stow(host_a, study).status_code == 200
    study[0].PatientID = "PID-CHANGED"
    assert stow(host_b, study).status_code == 200
    series_url = f"{host_a.url}/aets/SHARED/studies/{study[0].StudyInstanceUID}/series/{study[0].SeriesInstanceUID}"
    found = requests.get(f"{series_url}/instances", params={"includefield": "PatientID"}, timeout=30).json()
    assert sorted(value(m, "PatientID") for m in found) == sorted(["PID-CHANGED", str(study[1].PatientID)])
