"""STOW-RS: 40 instances of 512x512 16-bit through the gateway next to the floor, a bare pynetdicom
C-STORE of the same instances on one association to the same Orthanc; then the peak resident memory of
every gateway process while a ~500 MB upload streams through.

    python bench/stow.py [--instances 40] [--repeats 5] [--big-mb 500] [--workers 2]
"""
from __future__ import annotations

import argparse
from copy import deepcopy
import random
import tempfile
import time
from pathlib import Path

import requests
from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from common import Gateway, Orthanc, gateway_config, part10, report, report_memory, start_orthanc
from dicomrst.backends.dimse.sockets import disable_nagle
from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import generate_study

BOUNDARY = "dicomrst-bench"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def renamed(template: Dataset) -> Dataset:
    """The same image as a new instance, so that every run stores instances Orthanc has not seen."""
    copy = deepcopy(template)
    copy.SOPInstanceUID = generate_uid()
    copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
    return copy


def floor_store(orthanc: Orthanc, datasets: list[Dataset]) -> None:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    # TCP_NODELAY as on the gateway's associations: without it each C-STORE can wait ~40 ms.
    association = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet,
                               evt_handlers=[(evt.EVT_CONN_OPEN, disable_nagle)])
    for dataset in datasets:
        status = association.send_c_store(dataset)
        assert status.Status == 0x0000, status
    association.release()


def gateway_store(url: str, body: bytes, expected: int) -> None:
    response = requests.post(url, data=body, headers={"Content-Type": CONTENT_TYPE}, timeout=600)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["00081199"]["Value"]) == expected


def big_upload(url: str, template: Dataset, megabytes: int, folder: Path) -> tuple[int, float]:
    """Write a body of ~megabytes to disk, then stream it to the gateway from the file."""
    count = max(1, megabytes * 1_000_000 // len(part10(template)))
    body_path = folder / "big-body"
    with open(body_path, "wb") as body:
        for chunk in write_multipart((part10(renamed(template)) for _ in range(count)), "application/dicom", BOUNDARY):
            body.write(chunk)
    started = time.perf_counter()
    with open(body_path, "rb") as body:
        response = requests.post(url, data=body, headers={"Content-Type": CONTENT_TYPE}, timeout=3600)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["00081199"]["Value"]) == count
    body_path.unlink()
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--big-mb", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomrst-bench-"))
    orthanc = start_orthanc(work / "orthanc")
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}],
                            **{"max-upload-size": (args.big_mb + 100) * 1_000_000})
    gateway = Gateway(config, work, workers=args.workers)
    try:
        gateway.start()
        url = f"{gateway.url}/aets/{orthanc.aet}/studies"
        templates = generate_study(random.Random(40), n_series=1, instances_per_series=args.instances,
                                   rows=512, columns=512)

        def through_gateway() -> None:
            batch = [renamed(t) for t in templates]
            body = b"".join(write_multipart([part10(d) for d in batch], "application/dicom", BOUNDARY))
            started = time.perf_counter()
            gateway_store(url, body, len(batch))
            through_gateway.last = time.perf_counter() - started  # type: ignore[attr-defined]

        def floor() -> float:
            batch = [renamed(t) for t in templates]
            started = time.perf_counter()
            floor_store(orthanc, batch)
            return time.perf_counter() - started

        # Only the transfers are timed: preparing fresh instances is the same work for both.
        gateway_times, floor_times = [], []
        through_gateway()
        floor()
        for _ in range(args.repeats):
            through_gateway()
            gateway_times.append(through_gateway.last)  # type: ignore[attr-defined]
            floor_times.append(floor())
        ratio = report(f"STOW-RS of {args.instances} instances of 512x512x16 bit, {args.workers} gunicorn workers",
                       gateway_times, floor_times, target=1.0)
        count, elapsed = big_upload(url, templates[0], args.big_mb, work)
        print(f"  streamed a {args.big_mb} MB upload ({count} instances) in {elapsed:.1f} s")
        report_memory(gateway)
        print(f"  ratio gateway/floor {ratio:.2f} (target <= 1.0)")
    finally:
        gateway.stop()
        orthanc.stop()


if __name__ == "__main__":
    main()
