"""Every WADO-RS resource answers only for the study and series its path names: an instance reached
through a made-up study or series UID is 404, on a PACS (whose IMAGE-level C-MOVE goes by SOP Instance
UID alone) and in a bucket. Each part also says where it lives (Content-Location, PS3.18 8.7.3.3)."""
from __future__ import annotations

import pytest
import requests

from tests.integration.conftest import KnownData
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway

FOREIGN = "1.2.3.999"


def paths(known_data: KnownData, study_uid: str | None = None, series_uid: str | None = None) -> list[str]:
    instance = known_data.study(0)[0]
    other_series = next(d for d in known_data.study(0) if d.SeriesInstanceUID != instance.SeriesInstanceUID)
    study = study_uid or instance.StudyInstanceUID
    series = series_uid or instance.SeriesInstanceUID
    base = f"/studies/{study}/series/{series}/instances/{instance.SOPInstanceUID}"
    return [base, f"{base}/metadata", f"{base}/frames/1", f"{base}/bulkdata/7FE00010",
            f"/studies/{study}/series/{series}/metadata" if series_uid else
            f"/studies/{study}/series/{other_series.SeriesInstanceUID}/instances/{instance.SOPInstanceUID}"]


@pytest.mark.parametrize("aet", ["ORTHANC", "ORTHANCGET"])
def test_an_instance_under_another_study_is_not_found(gateway: Gateway, known_data: KnownData, aet: str):
    for path in paths(known_data, study_uid=FOREIGN):
        response = requests.get(f"{gateway.url}/aets/{aet}{path}", timeout=30)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert response.headers["Content-Type"].startswith("application/json")


def test_an_instance_under_another_series_is_not_found(gateway: Gateway, known_data: KnownData):
    for path in paths(known_data)[-1:] + paths(known_data, series_uid=FOREIGN)[:4]:
        response = requests.get(f"{gateway.url}/aets/ORTHANC{path}", timeout=30)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])


def test_the_right_path_still_answers(gateway: Gateway, known_data: KnownData):
    for path in paths(known_data)[:4]:
        response = requests.get(f"{gateway.url}/aets/ORTHANC{path}", timeout=30)
        assert response.status_code == 200, (path, response.text[:200])


def test_parts_say_where_they_live(gateway: Gateway, known_data: KnownData):
    instance = known_data.study(0)[0]
    root = f"{gateway.url}/aets/ORTHANC"
    url = (f"{root}/studies/{instance.StudyInstanceUID}/series/{instance.SeriesInstanceUID}"
           f"/instances/{instance.SOPInstanceUID}")
    frames = requests.get(f"{url}/frames/1", timeout=30)
    [(headers, _)] = parse_multipart(frames.headers["Content-Type"], frames.content)
    assert headers["content-location"] == f"{url}/frames/1"
    bulk = requests.get(f"{url}/bulkdata/7FE00010", timeout=30)
    [(headers, _)] = parse_multipart(bulk.headers["Content-Type"], bulk.content)
    assert headers["content-location"] == f"{url}/bulkdata/7FE00010"
    series = requests.get(f"{root}/studies/{instance.StudyInstanceUID}/series/{instance.SeriesInstanceUID}",
                          timeout=30)
    locations = {headers["content-location"] for headers, _ in parse_multipart(series.headers["Content-Type"],
                                                                              series.content)}
    expected = {f"{root}/studies/{d.StudyInstanceUID}/series/{d.SeriesInstanceUID}/instances/{d.SOPInstanceUID}"
                for d in known_data.study(0) if d.SeriesInstanceUID == instance.SeriesInstanceUID}
    assert locations == expected
