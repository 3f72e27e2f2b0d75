"""The S3 backend against moto's standalone S3 server, spoken to over HTTP, filled with boto3 in the
DICOM-RST layout."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file

from dicomrst.dicomweb.metadata import instance_metadata
from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.integration.dicom_json import tag, value
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, MotoS3, free_port, gateway_config

BUCKET = "research"
CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=s3-test'


@dataclass
class S3Setup:
    gateway: Gateway
    moto: MotoS3
    study: list[Dataset]
    frames: Dataset


def key_of(dataset: Dataset) -> str:
    return f"{dataset.StudyInstanceUID}/{dataset.SeriesInstanceUID}/{dataset.SOPInstanceUID}.dcm"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Setup]:
    moto = MotoS3(tmp_path_factory.mktemp("moto"))
    moto.start()
    client = moto.client()
    client.create_bucket(Bucket=BUCKET)
    study = generate_study(random.Random(5), n_series=2, instances_per_series=15, rows=32, columns=32)
    frames = dcmread(get_testdata_file("rtdose.dcm"))
    for dataset in study:
        client.put_object(Bucket=BUCKET, Key=key_of(dataset), Body=part10(dataset))
    client.put_object(Bucket=BUCKET, Key=key_of(frames), Body=open(get_testdata_file("rtdose.dcm"), "rb").read())
    # Not an instance of the layout: ignored by listings.
    client.put_object(Bucket=BUCKET, Key=f"{study[0].StudyInstanceUID}/README.txt", Body=b"notes")
    config = gateway_config([
        {"aet": "RESEARCH", "backend": "S3", "endpoint": moto.endpoint, "endpoint-style": "path", "bucket": BUCKET,
         "region": "us-east-1", "concurrency": 4,
         "credentials": {"access-key-env": "RESEARCH_KEY", "secret-key-env": "RESEARCH_SECRET"}},
        {"aet": "NOBUCKET", "backend": "S3", "endpoint": moto.endpoint, "endpoint-style": "path",
         "bucket": "absent-bucket", "credentials": {"access-key": "testing", "secret-key": "testing"}},
        {"aet": "UNREACHABLE", "backend": "S3", "endpoint": f"http://127.0.0.1:{free_port()}",
         "endpoint-style": "path", "bucket": BUCKET, "credentials": {"access-key": "testing", "secret-key": "testing"}},
        # The bucket answers, its index does not (a PostgreSQL that is down).
        {"aet": "INDEXDOWN", "backend": "S3", "endpoint": moto.endpoint, "endpoint-style": "path", "bucket": BUCKET,
         "region": "us-east-1", "credentials": {"access-key": "testing", "secret-key": "testing"},
         "index": f"postgresql://postgres@127.0.0.1:{free_port()}/index"},
    ])
    gateway = Gateway(config, tmp_path_factory.mktemp("s3-gateway"), workers=2,
                      environment={"RESEARCH_KEY": "testing", "RESEARCH_SECRET": "testing"})
    gateway.start()
    setup = S3Setup(gateway, moto, study, frames)
    # What the bucket holds is found by searches (and so by thumbnails) once indexed.
    assert run_index(setup).returncode == 0
    yield setup
    gateway.stop()
    moto.stop()


def run_index(s3: S3Setup) -> subprocess.CompletedProcess[str]:
    indexed = subprocess.run([sys.executable, "-m", "dicomrst.cli", "index", "RESEARCH", "--config",
                              str(s3.gateway.directory / "dicomrst.yaml"), "--no-progress"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "RESEARCH_KEY": "testing", "RESEARCH_SECRET": "testing"})
    assert indexed.returncode == 0, indexed.stderr
    return indexed


def get(s3: S3Setup, path: str, aet: str = "RESEARCH", **headers: str) -> requests.Response:
    return requests.get(f"{s3.gateway.url}/aets/{aet}{path}", headers=headers, timeout=30)


def instances(response: requests.Response) -> list[Dataset]:
    assert response.status_code == 200, response.text
    return [dcmread(BytesIO(body)) for _, body in parse_multipart(response.headers["Content-Type"], response.content)]


def test_health(s3: S3Setup):
    assert get(s3, "").status_code == 200
    missing = get(s3, "", aet="NOBUCKET")
    assert missing.status_code == 503 and "absent-bucket" in missing.json()["error"]
    started = time.monotonic()
    unreachable = get(s3, "", aet="UNREACHABLE")
    assert unreachable.status_code == 503 and "cannot be reached" in unreachable.json()["error"]
    assert time.monotonic() - started < 10


def test_study_series_and_instance(s3: S3Setup):
    study = s3.study
    originals = {str(d.SOPInstanceUID): d for d in study}
    received = instances(get(s3, f"/studies/{study[0].StudyInstanceUID}"))
    assert sorted(str(d.SOPInstanceUID) for d in received) == sorted(originals)
    assert all(d.PixelData == originals[str(d.SOPInstanceUID)].PixelData for d in received)
    series = instances(get(s3, f"/studies/{study[0].StudyInstanceUID}/series/{study[0].SeriesInstanceUID}"))
    assert {str(d.SOPInstanceUID) for d in series} == {str(d.SOPInstanceUID) for d in study
                                                         if d.SeriesInstanceUID == study[0].SeriesInstanceUID}
    one = study[3]
    (single,) = instances(get(s3, f"/studies/{one.StudyInstanceUID}/series/{one.SeriesInstanceUID}"
                                  f"/instances/{one.SOPInstanceUID}"))
    assert single.SOPInstanceUID == one.SOPInstanceUID


def test_metadata_and_bulk_data(s3: S3Setup):
    study = s3.study
    documents = get(s3, f"/studies/{study[0].StudyInstanceUID}/metadata").json()
    assert len(documents) == len(study)
    uri = documents[0][tag("PixelData")]["BulkDataURI"]
    assert uri.startswith(f"{s3.gateway.url}/aets/RESEARCH/studies/")
    bulk = requests.get(uri, timeout=30)
    ((_, content),) = parse_multipart(bulk.headers["Content-Type"], bulk.content)
    original = next(d for d in study if str(d.SOPInstanceUID) == value(documents[0], "SOPInstanceUID"))
    assert content == original.PixelData


def test_metadata_of_what_the_index_keeps_is_served_without_reading_the_bucket(s3: S3Setup):
    study = generate_study(random.Random(8), n_series=1, instances_per_series=2, rows=16, columns=16)
    body = b"".join(write_multipart([part10(d) for d in study], "application/dicom", "s3-test"))
    assert requests.post(f"{s3.gateway.url}/aets/RESEARCH/studies", data=body, timeout=30,
                         headers={"Content-Type": CONTENT_TYPE}).status_code == 200
    series = f"/studies/{study[0].StudyInstanceUID}/series/{study[0].SeriesInstanceUID}"
    served = get(s3, f"{series}/metadata").json()
    # The objects gone from the bucket behind the gateway's back: the documents still come, from the index.
    for dataset in study:
        s3.moto.client().delete_object(Bucket=BUCKET, Key=key_of(dataset))
    assert get(s3, f"{series}/instances/{study[0].SOPInstanceUID}").status_code == 404
    assert get(s3, f"{series}/metadata").json() == served
    root = f"{s3.gateway.url}/aets/RESEARCH"
    expected = [instance_metadata(part10(d), f"{root}{series}/instances/{d.SOPInstanceUID}") for d in study]
    assert sorted(served, key=lambda d: value(d, "SOPInstanceUID")) == \
        sorted(expected, key=lambda d: value(d, "SOPInstanceUID"))


def test_metadata_of_objects_indexed_by_their_header_only_is_read_from_the_bucket(s3: S3Setup):
    # dicomrst index reads headers only, so the index holds no document and the object is read.
    (large,) = generate_study(random.Random(9), n_series=1, instances_per_series=1, rows=512, columns=512)
    s3.moto.client().put_object(Bucket=BUCKET, Key=key_of(large), Body=part10(large))
    indexed = run_index(s3)
    assert "indexed 1 " in indexed.stdout, indexed.stdout
    path = f"/studies/{large.StudyInstanceUID}/series/{large.SeriesInstanceUID}/instances/{large.SOPInstanceUID}"
    (document,) = get(s3, f"{path}/metadata").json()
    assert document == instance_metadata(part10(large), f"{s3.gateway.url}/aets/RESEARCH{path}")


def test_an_index_that_is_down_is_503_and_stored_instances_are_reported_failed(s3: S3Setup):
    searched = get(s3, "/studies", aet="INDEXDOWN")
    assert searched.status_code == 503 and "index" in searched.json()["error"]
    study = generate_study(random.Random(10), n_series=1, instances_per_series=2, rows=16, columns=16)
    body = b"".join(write_multipart([part10(d) for d in study], "application/dicom", "s3-test"))
    stored = requests.post(f"{s3.gateway.url}/aets/INDEXDOWN/studies", data=body, timeout=30,
                           headers={"Content-Type": CONTENT_TYPE})
    # In the bucket but not searchable: reported failed, never silently half-stored.
    assert stored.status_code == 409, stored.text
    assert len(stored.json()[tag("FailedSOPSequence")]["Value"]) == 2
    # Retrieval needs no index.
    retrieved = get(s3, f"/studies/{s3.study[0].StudyInstanceUID}", aet="INDEXDOWN")
    assert retrieved.status_code == 200 and len(instances(retrieved)) == len(s3.study)
    details = requests.get(f"{s3.gateway.url}/aets", params={"detail": "true"}, timeout=30).json()
    assert next(d for d in details if d["aet"] == "INDEXDOWN")["index"]["error"] == "the index cannot be read"


def test_frames(s3: S3Setup):
    frames = s3.frames
    size = frames.Rows * frames.Columns * frames.BitsAllocated // 8
    response = get(s3, f"/studies/{frames.StudyInstanceUID}/series/{frames.SeriesInstanceUID}"
                       f"/instances/{frames.SOPInstanceUID}/frames/3")
    ((_, content),) = parse_multipart(response.headers["Content-Type"], response.content)
    assert content == frames.PixelData[2 * size:3 * size]


def test_stow_then_retrieve_and_store_again(s3: S3Setup):
    study = generate_study(random.Random(6), n_series=1, instances_per_series=3, rows=16, columns=16)
    body = b"".join(write_multipart([part10(d) for d in study] + [b"not dicom"], "application/dicom", "s3-test"))
    for _ in range(2):  # the second time stores the same instances again: idempotent
        response = requests.post(f"{s3.gateway.url}/aets/RESEARCH/studies", data=body, timeout=30,
                                 headers={"Content-Type": CONTENT_TYPE})
        assert response.status_code == 202
        module = response.json()
        assert len(module[tag("ReferencedSOPSequence")]["Value"]) == 3
        assert len(module[tag("FailedSOPSequence")]["Value"]) == 1
    client = s3.moto.client()
    for dataset in study:
        stored = client.get_object(Bucket=BUCKET, Key=key_of(dataset))["Body"].read()
        assert dcmread(BytesIO(stored)).PixelData == dataset.PixelData
    received = instances(get(s3, f"/studies/{study[0].StudyInstanceUID}"))
    assert sorted(str(d.SOPInstanceUID) for d in received) == sorted(str(d.SOPInstanceUID) for d in study)


def test_stowed_instances_are_searched_at_once_and_stored_again_replaced(s3: S3Setup):
    study = generate_study(random.Random(7), n_series=1, instances_per_series=3, rows=16, columns=16)
    study_uid, series_uid = str(study[0].StudyInstanceUID), str(study[0].SeriesInstanceUID)
    assert get(s3, f"/studies?StudyInstanceUID={study_uid}").json() == []
    body = b"".join(write_multipart([part10(d) for d in study], "application/dicom", "s3-test"))
    for _ in range(2):
        response = requests.post(f"{s3.gateway.url}/aets/RESEARCH/studies", data=body, timeout=30,
                                 headers={"Content-Type": CONTENT_TYPE})
        assert response.status_code == 200, response.text
        # Indexed in the same request: the next search finds every instance, once.
        (match,) = get(s3, f"/studies?StudyInstanceUID={study_uid}").json()
        assert value(match, "NumberOfStudyRelatedInstances") == 3
        assert value(match, "PatientID") == str(study[0].PatientID)
        found = get(s3, f"/studies/{study_uid}/series/{series_uid}/instances").json()
        assert sorted(value(m, "SOPInstanceUID") for m in found) == sorted(str(d.SOPInstanceUID) for d in study)


@pytest.mark.parametrize("path, status", [
    ("/studies/1.2.3.999", 404),
    ("/studies/1.2.3/series/4.5.6/instances/7.8.9", 404),
    ("/studies/1.2.3/series/4.5.6/instances/7.8.9/metadata", 404),
    ("/studies/..%2F..%2Fetc", 404),
    ("/studies/1.2.3/series/a.b", 400),
    ("/studies/1.2.3/series/4.5.6/instances/1.2..3", 400),
    ("/studies/1.2.3%2F4.5.6", 404),
    ("/studies/1.2.3%0A", 400),
])
def test_missing_and_path_shaped_uids(s3: S3Setup, path: str, status: int):
    response = get(s3, path)
    assert response.status_code == status, response.text
    assert "error" in response.json()


def test_prefix_of_another_study_does_not_match(s3: S3Setup):
    study_uid = str(s3.study[0].StudyInstanceUID)
    assert get(s3, f"/studies/{study_uid[:-1]}").status_code == 404


def test_unreachable_endpoint_for_retrieval_and_store(s3: S3Setup):
    assert get(s3, f"/studies/{s3.study[0].StudyInstanceUID}", aet="UNREACHABLE").status_code == 503
    # The origin is reached once the first part is in; a body that holds none is the client's fault (400).
    body = b"".join(write_multipart([part10(s3.study[0])], "application/dicom", "s3-test"))
    response = requests.post(f"{s3.gateway.url}/aets/UNREACHABLE/studies", data=body, timeout=30,
                             headers={"Content-Type": CONTENT_TYPE})
    assert response.status_code == 503
    response = requests.post(f"{s3.gateway.url}/aets/UNREACHABLE/studies", data=b"x", timeout=30,
                             headers={"Content-Type": CONTENT_TYPE})
    assert response.status_code == 400


def test_an_object_under_another_study_or_series_key_is_not_found(s3: S3Setup):
    """A key holds whatever was written there: the gateway answers only for the UIDs the URL names."""
    stray = s3.study[0]
    wrong_study = "1.2.3.4242"
    s3.moto.client().put_object(Bucket=BUCKET, Key=f"{wrong_study}/{stray.SeriesInstanceUID}/{stray.SOPInstanceUID}.dcm",
                                Body=part10(stray))
    base = f"/studies/{wrong_study}/series/{stray.SeriesInstanceUID}"
    for path in (base, f"{base}/metadata", f"{base}/instances/{stray.SOPInstanceUID}",
                 f"{base}/instances/{stray.SOPInstanceUID}/frames/1", f"/studies/{wrong_study}/metadata"):
        response = get(s3, path)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])


def test_rendered_and_thumbnails_from_a_bucket(s3: S3Setup):
    from PIL import Image

    from dicomrst.dicomweb.rendered_params import parse_rendered_parameters, thumbnail_parameters
    from dicomrst.dicomweb.rendering import render

    one = s3.study[3]
    instance = f"/studies/{one.StudyInstanceUID}/series/{one.SeriesInstanceUID}/instances/{one.SOPInstanceUID}"
    png = get(s3, f"{instance}/rendered", Accept="image/png")
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert png.content == render(one, 0, parse_rendered_parameters([]), "image/png")
    thumbnail = get(s3, f"{instance}/thumbnail", Accept="image/png")
    assert thumbnail.content == render(one, 0, thumbnail_parameters(parse_rendered_parameters([])), "image/png")
    # No search in a bucket: a study's thumbnail shows the first instance it lists.
    study = get(s3, f"/studies/{one.StudyInstanceUID}/thumbnail")
    assert study.status_code == 200 and Image.open(BytesIO(study.content)).format == "JPEG"
