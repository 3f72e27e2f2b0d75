"""The retrieve cache (aets[].cache) in front of a real Orthanc, under gunicorn with two workers.

What it must show: a viewer's series metadata and then every frame cross the PACS link once; requests
for a series being retrieved, in any worker, join that retrieval; a series is served from disk only
while the PACS confirms it (the C-FIND of the freshness rule, at most once per ttl), so an instance
added or deleted at the PACS is seen after ttl and never served stale past it; a store through the
gateway forgets its series; ETag / Last-Modified / 304; gzip metadata; frames of a multi-frame
instance read from disk; the cache bounded by size and kept across a restart; each in the metrics."""
from __future__ import annotations

import gzip
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import numpy
import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from dicomrst.config import ConfigError, parse_config
from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.integration.conftest import part10
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of, wait_until

TTL_MS = 3000
FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@dataclass
class Setup:
    gateway: Gateway
    orthanc: Orthanc
    study: list[Dataset]
    clip: Dataset

    def series(self, index: int) -> list[Dataset]:
        uid = sorted({d.SeriesInstanceUID for d in self.study})[index]
        return [d for d in self.study if d.SeriesInstanceUID == uid]


def multi_frame(template: Dataset, frames: int) -> Dataset:
    clip = dcmread(BytesIO(part10(template)))
    clip.SeriesInstanceUID = generate_uid()
    clip.SOPInstanceUID = clip.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    clip.NumberOfFrames = frames
    clip.BitsAllocated, clip.BitsStored, clip.HighBit, clip.PixelRepresentation = 8, 8, 7, 0
    clip.PixelData = numpy.random.default_rng(13).integers(0, 255, (frames, clip.Rows, clip.Columns),
                                                           dtype=numpy.uint8).tobytes()
    clip["PixelData"].VR = "OB"
    return clip


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[Setup]:
    study = generate_study(random.Random(1313), patient=Patient("Cache^Carla", "PID-1313", "19800101", "F"),
                           n_series=7, instances_per_series=4, rows=32, columns=32)
    clip = multi_frame(study[0], 10)
    for dataset in [*study, clip]:
        orthanc.upload(part10(dataset))
    config = gateway_config([
        {"aet": "CACHED", "host": "127.0.0.1", "port": orthanc.dicom_port,
         "cache": {"ttl": TTL_MS, "max-size": 50_000_000},
         # Orthanc sends the sub-operations as itself: the AET under another name in this gateway.
         "wado-rs": {"calling-aets": [orthanc.aet]}},
        {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port, "cache": {"enabled": False}},
        {"aet": "BYSTUDY", "host": "127.0.0.1", "port": orthanc.dicom_port,
         "wado-rs": {"method": "get"}, "cache": {"prefetch": "study", "ttl": TTL_MS}},
        {"aet": "BYINSTANCE", "host": "127.0.0.1", "port": orthanc.dicom_port,
         "wado-rs": {"method": "get"}, "cache": {"prefetch": "instance", "ttl": TTL_MS}},
    ], receiver_aet="DICOMRST-CACHE")
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path_factory.mktemp("cache-gateway"))
    gateway.start()
    yield Setup(gateway, orthanc, study, clip)
    gateway.stop()
    orthanc.delete_study(study[0].StudyInstanceUID)


def retrievals(gateway: Gateway, aet: str = "CACHED") -> float:
    return gateway.retrievals(aet=aet)


def finds(gateway: Gateway, aet: str = "CACHED") -> float:
    return gateway.metric("dicomrst_dimse_operations_total", aet=aet, operation="C-FIND")


def settled(gateway: Gateway, expected: float, aet: str = "CACHED") -> float:
    """The retrievals counted once those started have ended (a response can end before its retrieval)."""
    try:
        wait_until(lambda: retrievals(gateway, aet) >= expected, 10, "the retrieval to end")
    except Exception:
        pass
    time.sleep(0.3)
    return retrievals(gateway, aet)


def url(setup: Setup, dataset: Dataset, aet: str = "CACHED", level: str = "series") -> str:
    base = f"{setup.gateway.url}/aets/{aet}/studies/{dataset.StudyInstanceUID}"
    if level == "study":
        return base
    base += f"/series/{dataset.SeriesInstanceUID}"
    return base if level == "series" else f"{base}/instances/{dataset.SOPInstanceUID}"


def frames(setup: Setup, dataset: Dataset, numbers: str = "1", aet: str = "CACHED") -> list[bytes]:
    response = requests.get(f"{url(setup, dataset, aet, 'instance')}/frames/{numbers}",
                            headers={"Accept": FRAMES}, timeout=60)
    assert response.status_code == 200, response.text
    return [body for _, body in parse_multipart(response.headers["Content-Type"], response.content)]


def sop_uids_in_metadata(setup: Setup, dataset: Dataset, aet: str = "CACHED") -> set[str]:
    response = requests.get(f"{url(setup, dataset, aet)}/metadata", timeout=60)
    assert response.status_code == 200, response.text
    return {document["00080018"]["Value"][0] for document in response.json()}


def test_a_viewer_moves_a_series_once(cached: Setup):
    series = cached.series(0)
    before = retrievals(cached.gateway)
    assert sop_uids_in_metadata(cached, series[0]) == {d.SOPInstanceUID for d in series}
    pixels = {d.SOPInstanceUID: frames(cached, d) for d in series}
    assert settled(cached.gateway, before + 1) == before + 1
    # The same pixels as a retrieval that does not go through the cache.
    assert pixels == {d.SOPInstanceUID: frames(cached, d, aet="ORTHANC") for d in series}
    assert cached.gateway.metric("dicomrst_cache_requests_total", aet="CACHED", outcome="hit") >= len(series)


def test_a_frame_first_retrieves_its_series_and_the_rest_comes_from_disk(cached: Setup):
    series = cached.series(1)
    before = retrievals(cached.gateway)
    frames(cached, series[2])
    assert settled(cached.gateway, before + 1) == before + 1
    assert sop_uids_in_metadata(cached, series[0]) == {d.SOPInstanceUID for d in series}
    instances = requests.get(url(cached, series[0]), timeout=60)
    assert len(parse_multipart(instances.headers["Content-Type"], instances.content)) == len(series)
    single = requests.get(url(cached, series[3], level="instance"), headers={"Accept": "application/dicom"}, timeout=60)
    assert dcmread(BytesIO(single.content)).SOPInstanceUID == series[3].SOPInstanceUID
    assert retrievals(cached.gateway) == before + 1


def test_requests_in_both_workers_join_the_one_retrieval_in_flight(cached: Setup):
    series = cached.series(2)
    before = retrievals(cached.gateway)
    joins = cached.gateway.metric("dicomrst_cache_requests_total", outcome="join")
    urls = [f"{url(cached, d, level='instance')}/frames/1" for d in series] * 3 + [f"{url(cached, series[0])}/metadata"]
    start = threading.Barrier(len(urls))
    statuses: list[int] = []

    def fetch(address: str) -> None:
        start.wait()
        statuses.append(requests.get(address, headers={"Accept": FRAMES if "frames" in address else "*/*"},
                                     timeout=60).status_code)

    threads = [threading.Thread(target=fetch, args=(address,)) for address in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(urls)
    assert settled(cached.gateway, before + 1) == before + 1
    assert cached.gateway.metric("dicomrst_cache_requests_total", outcome="join") > joins


def test_past_its_ttl_a_series_is_confirmed_by_one_cfind_not_moved_again(cached: Setup):
    series = cached.series(3)
    frames(cached, series[0])
    moved = settled(cached.gateway, retrievals(cached.gateway) + 1)
    time.sleep(TTL_MS / 1000 + 0.2)
    asked = finds(cached.gateway)
    frames(cached, series[1])
    frames(cached, series[2])
    sop_uids_in_metadata(cached, series[0])
    assert finds(cached.gateway) == asked + 1
    assert retrievals(cached.gateway) == moved


def test_an_instance_added_or_deleted_at_the_pacs_is_seen_once_ttl_has_passed(cached: Setup):
    series = cached.series(4)
    expected = {d.SOPInstanceUID for d in series}
    assert sop_uids_in_metadata(cached, series[0]) == expected
    added = dcmread(BytesIO(part10(series[0])))
    added.SOPInstanceUID = added.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    orthanc_id = cached.orthanc.upload(part10(added))["ID"]
    # Within ttl the series is served as the PACS last confirmed it (the stated staleness bound).
    assert sop_uids_in_metadata(cached, series[0]) == expected
    time.sleep(TTL_MS / 1000 + 0.2)
    assert sop_uids_in_metadata(cached, series[0]) == expected | {added.SOPInstanceUID}
    requests.delete(f"{cached.orthanc.url}/instances/{orthanc_id}", timeout=10).raise_for_status()
    time.sleep(TTL_MS / 1000 + 0.2)
    assert sop_uids_in_metadata(cached, series[0]) == expected
    gone = requests.get(f"{url(cached, added, level='instance')}/frames/1", headers={"Accept": FRAMES}, timeout=60)
    assert gone.status_code == 404


def test_a_store_through_the_gateway_makes_the_series_asked_again(cached: Setup):
    series = cached.series(5)
    frames(cached, series[0])  # the series is cached
    added = dcmread(BytesIO(part10(series[0])))
    added.SOPInstanceUID = added.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    boundary = "cache-test"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(added)
            + f"\r\n--{boundary}--\r\n".encode())
    stored = requests.post(f"{cached.gateway.url}/aets/CACHED/studies", data=body, timeout=60,
                           headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert stored.status_code == 200, stored.text
    assert added.SOPInstanceUID in sop_uids_in_metadata(cached, series[0])


def test_frames_of_a_multi_frame_instance_come_from_disk(cached: Setup):
    before = retrievals(cached.gateway)
    each = [frames(cached, cached.clip, str(number))[0] for number in range(1, 11)]
    assert settled(cached.gateway, before + 1) == before + 1
    assert each == frames(cached, cached.clip, "1,2,3,4,5,6,7,8,9,10", aet="ORTHANC")
    assert frames(cached, cached.clip, "10,3") == [each[9], each[2]]
    # A frame it does not have is refused as without the cache.
    too_far, uncached = (requests.get(f"{url(cached, cached.clip, aet, 'instance')}/frames/11",
                                      headers={"Accept": FRAMES}, timeout=60) for aet in ("CACHED", "ORTHANC"))
    assert too_far.status_code == uncached.status_code == 400 and too_far.json() == uncached.json()
    assert retrievals(cached.gateway) == before + 1


def test_warm_responses_carry_validators_and_answer_304(cached: Setup):
    series = cached.series(0)
    metadata_url = f"{url(cached, series[0])}/metadata"
    first = requests.get(metadata_url, timeout=60)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('W/"')
    assert re.fullmatch(rf"private, max-age={TTL_MS // 1000}", first.headers["Cache-Control"])
    assert int(first.headers["Age"]) <= TTL_MS // 1000
    moved, asked = retrievals(cached.gateway), finds(cached.gateway)
    again = requests.get(metadata_url, headers={"If-None-Match": etag}, timeout=60)
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    since = requests.get(metadata_url, headers={"If-Modified-Since": last_modified}, timeout=60)
    assert since.status_code == 304
    other = requests.get(metadata_url, headers={"If-None-Match": 'W/"something-else"'}, timeout=60)
    assert other.status_code == 200 and len(other.json()) == len(series)
    # Another representation is another entity.
    xml = requests.get(metadata_url, headers={"Accept": "multipart/related; type=application/dicom+xml"}, timeout=60)
    assert xml.status_code == 200 and xml.headers["ETag"] != etag
    frame_url = f"{url(cached, series[1], level='instance')}/frames/1"
    frame = requests.get(frame_url, headers={"Accept": FRAMES}, timeout=60)
    assert requests.get(frame_url, headers={"Accept": FRAMES, "If-None-Match": frame.headers["ETag"]},
                        timeout=60).status_code == 304
    assert retrievals(cached.gateway) == moved
    assert finds(cached.gateway) - asked <= 1  # ttl may have passed in between: one confirmation


def test_a_response_not_served_by_the_cache_is_private_without_validators(cached: Setup):
    response = requests.get(f"{url(cached, cached.series(0)[0], aet='ORTHANC')}/metadata", timeout=60)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private" and "ETag" not in response.headers


def test_metadata_is_gzipped_for_a_client_that_accepts_it(cached: Setup):
    metadata_url = f"{url(cached, cached.series(0)[0])}/metadata"
    plain = requests.get(metadata_url, headers={"Accept-Encoding": "identity"}, timeout=60)
    assert "Content-Encoding" not in plain.headers
    raw = requests.get(metadata_url, headers={"Accept-Encoding": "gzip"}, timeout=60, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in raw.headers["Vary"]
    compressed = raw.raw.read()
    assert gzip.decompress(compressed) == plain.content and len(compressed) < len(plain.content) / 2


def test_prefetch_study_retrieves_the_study_once_for_frames_of_any_series(cached: Setup):
    before = retrievals(cached.gateway, "BYSTUDY")
    for dataset in cached.series(0)[:2] + cached.series(6)[:2]:
        frames(cached, dataset, aet="BYSTUDY")
    assert settled(cached.gateway, before + 1, "BYSTUDY") == before + 1


def test_prefetch_instance_retrieves_one_instance_per_frame_request(cached: Setup):
    before = retrievals(cached.gateway, "BYINSTANCE")
    series = cached.series(6)
    for dataset in series[:3]:
        frames(cached, dataset, aet="BYINSTANCE")
    frames(cached, series[0], aet="BYINSTANCE")  # landed within ttl: from disk
    assert settled(cached.gateway, before + 3, "BYINSTANCE") == before + 3


def test_the_cache_is_reported_in_metrics(cached: Setup):
    frames(cached, cached.series(0)[0])
    assert cached.gateway.metric("dicomrst_cache_served_bytes_total", aet="CACHED") > 0
    assert cached.gateway.metric("dicomrst_retrieved_bytes_total", aet="CACHED") > 0
    assert cached.gateway.metric("dicomrst_cache_bytes", aet="CACHED") > 0
    assert cached.gateway.metric("dicomrst_cache_requests_total", aet="CACHED", outcome="miss") >= 1


def test_the_cache_outlives_a_restart(cached: Setup):
    series = cached.series(0)
    frames(cached, series[0])
    cached.gateway.stop()
    cached.gateway.start()
    assert retrievals(cached.gateway) == 0  # a new gateway: its counters start again
    assert sop_uids_in_metadata(cached, series[0]) == {d.SOPInstanceUID for d in series}
    assert [frames(cached, d) for d in series]
    assert retrievals(cached.gateway) == 0


def test_past_its_size_the_least_recently_used_series_is_evicted(tmp_path, orthanc: Orthanc):
    study = generate_study(random.Random(1414), patient=Patient("Evict^Eve", "PID-1414", "19800101", "F"),
                           n_series=3, instances_per_series=4, rows=256, columns=256)
    for dataset in study:
        orthanc.upload(part10(dataset))
    config = gateway_config([{"aet": "SMALL", "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"method": "get"}, "cache": {"max-size": 1_500_000}}])
    gateway = Gateway(config, tmp_path)
    gateway.start()
    try:
        setup = Setup(gateway, orthanc, study, study[0])
        for index in range(3):
            frames(setup, setup.series(index)[0], aet="SMALL")
        assert gateway.metric("dicomrst_cache_evictions_total", aet="SMALL") > 0
        before = settled(gateway, 3, "SMALL")
        assert sop_uids_in_metadata(setup, setup.series(0)[0], aet="SMALL") == {d.SOPInstanceUID for d in setup.series(0)}
        assert retrievals(gateway, "SMALL") == before + 1  # the oldest series went first
    finally:
        gateway.stop()
        orthanc.delete_study(study[0].StudyInstanceUID)


def test_a_series_larger_than_the_whole_cache_is_still_served_whole(tmp_path, orthanc: Orthanc):
    study = generate_study(random.Random(1515), patient=Patient("Tiny^Tom", "PID-1515", "19800101", "M"),
                           n_series=1, instances_per_series=6, rows=256, columns=256)
    for dataset in study:
        orthanc.upload(part10(dataset))
    config = gateway_config([{"aet": "TINY", "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"method": "get"}, "cache": {"max-size": 200_000}}])
    gateway = Gateway(config, tmp_path)
    gateway.start()
    try:
        setup = Setup(gateway, orthanc, study, study[0])
        expected = {d.SOPInstanceUID for d in study}
        assert sop_uids_in_metadata(setup, study[0], aet="TINY") == expected
        instances = requests.get(url(setup, study[0], "TINY"), timeout=60)
        assert instances.status_code == 200
        assert {dcmread(BytesIO(body)).SOPInstanceUID
                for _, body in parse_multipart(instances.headers["Content-Type"], instances.content)} == expected
        assert all(frames(setup, d, aet="TINY") for d in study)
        assert gateway.metric("dicomrst_cache_evictions_total", aet="TINY") > 0
    finally:
        gateway.stop()
        orthanc.delete_study(study[0].StudyInstanceUID)


def test_a_study_is_streamed_through_and_its_series_kept(cached: Setup):
    before = retrievals(cached.gateway)
    study, uncached = (requests.get(url(cached, cached.study[0], aet, level="study"), timeout=60)
                       for aet in ("CACHED", "ORTHANC"))
    assert study.status_code == uncached.status_code == 200
    found, expected = ({dcmread(BytesIO(body)).SOPInstanceUID for _, body in parse_multipart(r.headers["Content-Type"], r.content)}
                       for r in (study, uncached))
    assert found == expected and len(found) > len(cached.study)
    series = cached.series(6)
    assert sop_uids_in_metadata(cached, series[0]) == {d.SOPInstanceUID for d in series}
    assert retrievals(cached.gateway) == before + 1


def test_cache_keys_are_checked():
    with pytest.raises(ConfigError, match=r"aets\[0\]\.cache\.prefetch: must be one of series, instance, study"):
        parse_config({"aets": [{"aet": "A", "host": "h", "port": 1, "cache": {"prefetch": "folder"}}]})
    with pytest.raises(ConfigError, match=r"aets\[0\]\.cache\.ttl: must be at least 1"):
        parse_config({"aets": [{"aet": "A", "host": "h", "port": 1, "cache": {"ttl": 0}}]})
    with pytest.raises(ConfigError, match=r"aets\[0\]\.cache\.max-age: must be at least 1"):
        parse_config({"aets": [{"aet": "A", "host": "h", "port": 1, "cache": {"max-age": 0}}]})
