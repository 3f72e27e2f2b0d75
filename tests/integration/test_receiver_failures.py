"""The move receiver and the workers dying as processes do (kill -9): a dead receiver is started again by
gunicorn's master, and until it runs a C-MOVE is 503 with the reason, never a confident 404; the
health check and /aets?detail=true say so. A worker killed mid-move leaves no spool behind for long."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from pydicom import Dataset

from dicomrst.backends.dimse.spool import SELECTION_FILE
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.peers import Gateway, Orthanc, free_port, gateway_config, port_is_free, receiver_of, wait_until


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _command(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _gone(pid: int) -> bool:
    """Dead and reaped (gunicorn's master reaps every child it sees die)."""
    return not (Path("/proc") / str(pid)).exists()


def _detail(gateway: Gateway, aet: str) -> dict[str, object]:
    return next(entry for entry in requests.get(f"{gateway.url}/aets?detail=true", timeout=10).json()
                if entry["aet"] == aet)


def test_a_killed_receiver_is_started_again_and_moves_meanwhile_are_503(tmp_path: Path, orthanc: Orthanc):
    study = generate_study(random.Random(1616), n_series=1, instances_per_series=2, rows=16, columns=16)
    for dataset in study:
        orthanc.upload(part10(dataset))
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "cache": {"enabled": False}}], receiver_aet="DICOMRST-RESTART")
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path)
    gateway.start()
    instance_url = (f"{gateway.url}/aets/{orthanc.aet}/studies/{study[0].StudyInstanceUID}/series/"
                    f"{study[0].SeriesInstanceUID}/instances/{study[0].SOPInstanceUID}")
    try:
        assert requests.get(instance_url, timeout=30).status_code == 200
        assert gateway.process is not None
        [receiver] = [pid for pid in _children(gateway.process.pid) if " receiver " in _command(pid)]
        os.kill(receiver, signal.SIGKILL)
        wait_until(lambda: _gone(receiver), 5, "the receiver to die")
        # Before the master has it running again (a Python start takes a while).
        health = requests.get(f"{gateway.url}/aets/{orthanc.aet}", timeout=30)
        moved = requests.get(instance_url, timeout=30)
        assert health.status_code == 503 and "move receiver" in health.json()["error"]
        assert moved.status_code == 503 and "move receiver" in moved.json()["error"], moved.text
        assert _detail(gateway, orthanc.aet)["receiver"] == {"aet": "DICOMRST-RESTART",
                                                             "port": receiver_of(config)[1], "running": False}
        wait_until(lambda: _detail(gateway, orthanc.aet)["receiver"]["running"], 30, "the receiver to run again")  # type: ignore[index]
        assert requests.get(instance_url, timeout=30).status_code == 200
        assert "the move receiver" in gateway.log_path.read_text() and "starting it again" in gateway.log_path.read_text()
    finally:
        gateway.stop()
        orthanc.delete_study(study[0].StudyInstanceUID)
    assert port_is_free(receiver_of(config)[1])


def test_the_spool_of_a_worker_killed_mid_move_is_removed_within_seconds(tmp_path: Path):
    storage = tmp_path / "storage"
    storage.mkdir()
    series: list[Dataset] = generate_study(random.Random(1717), n_series=1, instances_per_series=8,
                                           rows=512, columns=512)
    for index, dataset in enumerate(series):
        (storage / f"{index}.dcm").write_bytes(part10(dataset))
    config = gateway_config([], receiver_aet="DICOMRST-SPOOL")
    receiver_aet, receiver_port = receiver_of(config)
    pacs_port = free_port()
    # A PACS that sends 1 MB/s: the move of 4 MB is under way for seconds.
    pacs = subprocess.Popen([sys.executable, "-m", "dicomrst.cli", "sample-pacs", "--storage", str(storage),
                             "--no-seed", "--aet", "SLOWPACS", "--port", str(pacs_port), "--throughput-mb-s", "1",
                             "--destination", f"{receiver_aet}=127.0.0.1:{receiver_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config["aets"].append({"aet": "SLOWPACS", "host": "127.0.0.1", "port": pacs_port, "cache": {"enabled": False}})
    spool = tmp_path / "spool"
    gateway = Gateway(config, tmp_path / "gateway", workers=1, environment={"DICOMRST_SPOOL": str(spool)})
    (tmp_path / "gateway").mkdir()
    try:
        wait_until(lambda: not port_is_free(pacs_port), 30, "the sample PACS")
        gateway.start()
        url = (f"{gateway.url}/aets/SLOWPACS/studies/{series[0].StudyInstanceUID}/series/"
               f"{series[0].SeriesInstanceUID}")
        reader = threading.Thread(target=lambda: _read_quietly(url), daemon=True)
        reader.start()

        def moves() -> list[Path]:
            return [selection.parent for selection in spool.rglob(SELECTION_FILE)]

        # The move is registered, and the PACS is sending (the worker reads each instance as it lands).
        wait_until(lambda: moves(), 30, "a move to be under way")
        time.sleep(1)
        assert gateway.process is not None
        [worker] = [pid for pid in _children(gateway.process.pid) if " receiver " not in _command(pid)]
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        assert moves()
        wait_until(lambda: not moves(), 10, "the dead worker's spool to go")
        assert time.monotonic() - killed_at < 10
    finally:
        gateway.stop()
        pacs.terminate()
        pacs.wait(10)


def _read_quietly(url: str) -> None:
    try:
        requests.get(url, timeout=60)
    except requests.RequestException:
        pass
