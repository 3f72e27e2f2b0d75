"""The README's first command: `dicomrst up` brings up the sample PACS and the gateway together."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from tests.integration.dicom_json import person_name
from tests.peers import REPO, free_port, wait_until


def test_up_serves_the_sample_pacs_at_once(tmp_path: Path):
    config = yaml.safe_load((REPO / "etc" / "dicomrst.yaml").read_text())
    http_port, pacs_port = free_port(), free_port()
    config["server"]["http"]["port"] = http_port
    config["server"]["dimse"][0]["port"] = free_port()
    config["aets"][0]["port"] = pacs_port
    config_path = tmp_path / "dicomrst.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "up.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dicomrst.cli", "up", "--config", str(config_path), "--storage", str(tmp_path / "pacs")],
        cwd=REPO, stdout=log, stderr=log, env={**os.environ, "WEB_CONCURRENCY": "1"},
    )
    url = f"http://127.0.0.1:{http_port}/aets/SAMPLE"
    try:
        wait_until(lambda: requests.get(url, timeout=2).ok, 60, "dicomrst up", process)
        studies = requests.get(f"{url}/studies", timeout=10).json()
        assert len(studies) == 5
        assert "Müller^Jürgen" in {person_name(study) for study in studies}
        # The sample PACS agrees to fuzzy person name matching in the C-FIND extended negotiation.
        fuzzy = requests.get(f"{url}/studies", params={"PatientName": "müller*", "fuzzymatching": "true"}, timeout=10)
        assert "Warning" not in fuzzy.headers and {person_name(s) for s in fuzzy.json()} == {"Müller^Jürgen"}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, (tmp_path / "up.log").read_text()


def test_check_config_reports_the_key_path(tmp_path: Path):
    good = subprocess.run([sys.executable, "-m", "dicomrst.cli", "check-config", "etc/dicomrst.yaml"],
                          cwd=REPO, capture_output=True, text=True)
    assert good.returncode == 0 and "OK" in good.stdout
    bad_path = tmp_path / "bad.yaml"
    bad_path.write_text("aets:\n  - aet: PACS\n    host: h\n")
    bad = subprocess.run([sys.executable, "-m", "dicomrst.cli", "check-config", str(bad_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "aets[0].port: is required" in bad.stderr


def test_check_config_looks_the_index_attributes_up(tmp_path: Path):
    config = tmp_path / "index.yaml"
    entry = ("aets:\n  - aet: BUCKET\n    backend: S3\n    endpoint: http://127.0.0.1:9\n    bucket: research\n"
             "    index: {url: 'sqlite:///%s/index.sqlite', attributes: [%s]}\n")
    config.write_text(entry % (tmp_path, "BodyPartExamined"))
    good = subprocess.run([sys.executable, "-m", "dicomrst.cli", "check-config", str(config)],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    config.write_text(entry % (tmp_path, "BodyPartExamind"))
    bad = subprocess.run([sys.executable, "-m", "dicomrst.cli", "check-config", str(config)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "aets[0].index.attributes: 'BodyPartExamind' is not a DICOM attribute keyword" \
        in bad.stderr, bad.stderr
