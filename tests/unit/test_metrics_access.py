"""With access control on, /metrics needs a token and shows a token only the samples of the AETs it
opens (and those of no AET)."""
from __future__ import annotations

from dicomrst import create_app
from dicomrst.config import parse_config
from dicomrst.metrics import DIMSE_OPERATIONS


def test_a_token_sees_the_metrics_of_its_aets_only():
    config = parse_config({
        "server": {"http": {"auth": {"tokens": [{"token": "one", "aets": ["ONE"]}, {"token": "all", "aets": ["*"]}]}}},
        "aets": [{"aet": "ONE", "host": "h", "port": 1}, {"aet": "TWO", "host": "h", "port": 2}],
    })
    client = create_app(config).test_client()
    DIMSE_OPERATIONS.labels("ONE", "C-FIND", "success").inc()
    DIMSE_OPERATIONS.labels("TWO", "C-FIND", "success").inc()
    assert client.get("/metrics").status_code == 401
    seen_by_one = client.get("/metrics", headers={"Authorization": "Bearer one"}).get_data(as_text=True)
    seen_by_all = client.get("/metrics", headers={"Authorization": "Bearer all"}).get_data(as_text=True)
    assert 'aet="ONE"' in seen_by_one and 'aet="TWO"' not in seen_by_one
    assert "dicomrst_http_requests_total" in seen_by_one  # what belongs to no AET stays
    assert 'aet="ONE"' in seen_by_all and 'aet="TWO"' in seen_by_all
