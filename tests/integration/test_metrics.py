"""/metrics under gunicorn with several workers: the counts of every worker, added up."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import KnownData
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of

QUERIES = 24
RETRIEVALS = 3


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc, known_data: KnownData) -> Iterator[Gateway]:
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}],
                            receiver_aet="DICOMRST-METRICS")
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path_factory.mktemp("metrics"), workers=3)
    gateway.start()
    yield gateway
    gateway.stop()


def samples(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{gateway.url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_add_up_across_workers(metered: Gateway, known_data: KnownData):
    session = requests.Session()
    for _ in range(QUERIES):
        assert session.get(f"{metered.url}/aets/ORTHANC/studies", timeout=30).status_code == 200
        session.close()  # a new connection each time, so that several workers serve them
    study_uid = known_data.study(0)[0].StudyInstanceUID
    for _ in range(RETRIEVALS):
        assert requests.get(f"{metered.url}/aets/ORTHANC/studies/{study_uid}", timeout=30).status_code == 200
    assert requests.get(f"{metered.url}/aets/ORTHANC/studies?limit=x", timeout=30).status_code == 400
    for _ in range(5):  # whichever worker answers, the totals are the same
        found = samples(metered)
        route = "/aets/<aet>/studies"
        assert found[("dicomrst_http_requests_total", (("route", route), ("status", "200")))] == QUERIES
        assert found[("dicomrst_http_requests_total", (("route", route), ("status", "400")))] == 1
        assert found[("dicomrst_http_response_bytes_total", (("route", route),))] > QUERIES * 100
        assert found[("dicomrst_dimse_operations_total",
                      (("aet", "ORTHANC"), ("operation", "C-FIND"), ("outcome", "success")))] == QUERIES
        assert found[("dicomrst_dimse_operations_total",
                      (("aet", "ORTHANC"), ("operation", "C-MOVE"), ("outcome", "success")))] == RETRIEVALS
        assert found[("dicomrst_dimse_operation_seconds_count", (("aet", "ORTHANC"), ("operation", "C-MOVE")))] == RETRIEVALS
        assert found.get(("dicomrst_associations_open", (("aet", "ORTHANC"),)), 0) == 0
        assert found.get(("dicomrst_moves_in_flight", (("aet", "ORTHANC"),)), 0) == 0
