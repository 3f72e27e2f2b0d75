"""The retrieve cache (aets[].cache) in front of a real Orthanc: a viewer's series metadata and then every
frame cross the PACS link once; a series is served from disk only within its time to live; a store through
the gateway makes the next retrieval of the series ask the PACS again."""
from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import pytest
import requests
from pydicom import Dataset, dcmread

from dicomrst.config import ConfigError, parse_config
from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.integration.conftest import part10
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of

TTL_MS = 3000
FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@dataclass
class Setup:
    gateway: Gateway
    study: list[Dataset]


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[Setup]:
    study = generate_study(random.Random(1313), patient=Patient("Cache^Carla", "PID-1313", "19800101", "F"),
                           n_series=1, instances_per_series=4, rows=32, columns=32)
    for dataset in study:
        orthanc.upload(part10(dataset))
    config = gateway_config([
        {"aet": "CACHED", "host": "127.0.0.1", "port": orthanc.dicom_port,
         "cache": {"enabled": True, "ttl": TTL_MS, "max-size": 50_000_000},
         # Orthanc sends the sub-operations as itself: the AET under another name in this gateway.
         "wado-rs": {"calling-aets": [orthanc.aet]}},
        {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
    ], receiver_aet="DICOMRST-CACHE")
    config["server"]["cache"] = {"path": str(tmp_path_factory.mktemp("cache"))}
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path_factory.mktemp("cache-gateway"))
    gateway.start()
    yield Setup(gateway, study)
    gateway.stop()
    for found in requests.post(f"{orthanc.url}/tools/lookup", data=study[0].StudyInstanceUID, timeout=10).json():
        requests.delete(f"{orthanc.url}/studies/{found['ID']}", timeout=10)


def moves(gateway: Gateway, aet: str = "CACHED") -> float:
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(
        rf'dicomrst_dimse_operations_total\{{(?=[^}}]*aet="{aet}")(?=[^}}]*operation="C-MOVE")[^}}]*\}} ([0-9.e+]+)', text))


def series_url(setup: Setup, aet: str = "CACHED") -> str:
    first = setup.study[0]
    return f"{setup.gateway.url}/aets/{aet}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"


def frame(setup: Setup, dataset: Dataset, aet: str = "CACHED") -> bytes:
    response = requests.get(f"{series_url(setup, aet)}/instances/{dataset.SOPInstanceUID}/frames/1",
                            headers={"Accept": FRAMES}, timeout=60)
    assert response.status_code == 200, response.text
    [(_, body)] = parse_multipart(response.headers["Content-Type"], response.content)
    return body


def test_a_viewer_moves_a_series_once(cached: Setup):
    time.sleep(TTL_MS / 1000 + 0.2)  # whatever an earlier test left has expired
    before = moves(cached.gateway)
    metadata = requests.get(f"{series_url(cached)}/metadata", timeout=60)
    assert metadata.status_code == 200 and len(metadata.json()) == len(cached.study)
    frames = {d.SOPInstanceUID: frame(cached, d) for d in cached.study}
    assert moves(cached.gateway) - before == 1
    # The same pixels as a retrieval that does not go through the cache.
    assert frames == {d.SOPInstanceUID: frame(cached, d, aet="ORTHANC") for d in cached.study}


def test_a_frame_first_moves_its_series_and_the_rest_is_served_from_disk(cached: Setup):
    time.sleep(TTL_MS / 1000 + 0.2)
    before = moves(cached.gateway)
    frame(cached, cached.study[2])
    assert moves(cached.gateway) - before == 1
    assert len(requests.get(f"{series_url(cached)}/metadata", timeout=60).json()) == len(cached.study)
    instances = requests.get(series_url(cached), timeout=60)
    assert len(parse_multipart(instances.headers["Content-Type"], instances.content)) == len(cached.study)
    assert moves(cached.gateway) - before == 1


def test_a_series_older_than_its_time_to_live_is_moved_again(cached: Setup):
    frame(cached, cached.study[0])
    before = moves(cached.gateway)
    frame(cached, cached.study[1])
    assert moves(cached.gateway) == before
    time.sleep(TTL_MS / 1000 + 0.2)
    frame(cached, cached.study[1])
    assert moves(cached.gateway) == before + 1


def test_a_store_through_the_gateway_makes_the_series_asked_again(cached: Setup):
    frame(cached, cached.study[0])  # the series is cached
    added = dcmread(BytesIO(part10(cached.study[0])))
    from pydicom.uid import generate_uid

    added.SOPInstanceUID = added.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    boundary = "cache-test"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(added)
            + f"\r\n--{boundary}--\r\n".encode())
    stored = requests.post(f"{cached.gateway.url}/aets/CACHED/studies", data=body, timeout=60,
                           headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert stored.status_code == 200, stored.text
    metadata = requests.get(f"{series_url(cached)}/metadata", timeout=60).json()
    assert added.SOPInstanceUID in {m["00080018"]["Value"][0] for m in metadata}


def test_cache_keys_are_checked():
    with pytest.raises(ConfigError, match=r"aets\[0\]\.cache\.prefetch: must be one of series, instance, study"):
        parse_config({"aets": [{"aet": "A", "host": "h", "port": 1, "cache": {"prefetch": "folder"}}]})
    with pytest.raises(ConfigError, match=r"aets\[0\]\.cache\.ttl: must be at least 1"):
        parse_config({"aets": [{"aet": "A", "host": "h", "port": 1, "cache": {"ttl": 0}}]})
