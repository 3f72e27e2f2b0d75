"""An Orthanc stopped in the middle of a C-MOVE: the client sees a broken stream, nothing is left in
the spool, and the gateway goes on serving."""
from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dicomrst.backends.dimse.spool import spool_root
from dicomrst.config import parse_config
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.integration.multipart import IncompleteMultipart, parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of, start_orthanc


@pytest.fixture(scope="module")
def doomed_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, str]]:
    orthanc = start_orthanc(tmp_path_factory.mktemp("doomed-orthanc"))
    study = generate_study(random.Random(3), n_series=1, instances_per_series=150, rows=256, columns=256)
    for dataset in study:
        orthanc.upload(part10(dataset))
    yield orthanc, str(study[0].StudyInstanceUID)
    orthanc.stop()


def test_orthanc_stopped_mid_move(tmp_path: Path, doomed_orthanc: tuple[Orthanc, str]):
    orthanc, study_uid = doomed_orthanc
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"timeout": 3000}}])
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path, workers=2)
    gateway.start()
    try:
        started = time.monotonic()
        with requests.get(f"{gateway.url}/aets/{orthanc.aet}/studies/{study_uid}", stream=True, timeout=30) as response:
            assert response.status_code == 200
            chunks = response.iter_content(chunk_size=None)
            received = next(chunks)
            assert orthanc.process is not None
            orthanc.process.kill()
            try:
                for chunk in chunks:
                    received += chunk
            except requests.exceptions.ChunkedEncodingError:
                pass
        assert time.monotonic() - started < 10
        with pytest.raises(IncompleteMultipart):
            parse_multipart(response.headers["Content-Type"], received)
        root = spool_root(parse_config(config).server.dimse[0])
        assert [p for p in root.rglob("*") if p.is_dir() and p.name.isdigit()] == []
        down = requests.get(f"{gateway.url}/aets/{orthanc.aet}/studies/{study_uid}", timeout=10)
        assert down.status_code == 503
        assert requests.get(f"{gateway.url}/aets", timeout=5).status_code == 200
        assert "response stream broken off" in gateway.log_path.read_text()
        # No association is left open behind the fault, in any worker.
        metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
        open_lines = [line for line in metrics.splitlines() if line.startswith("dicomrst_associations_open{")]
        assert open_lines and all(float(line.rsplit(" ", 1)[1]) == 0 for line in open_lines)
    finally:
        gateway.stop()
