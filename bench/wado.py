"""WADO-RS: a ~100 MB study (200 instances of 512x512 16-bit) through the gateway next to the floor, a
bare pynetdicom C-MOVE into memory from the same Orthanc (TCP_NODELAY on its sockets, as on the
gateway's), plus Orthanc's own DICOMweb for reference.
Also the time to first byte and the peak resident memory of every gateway process.

    python bench/wado.py [--instances 200] [--repeats 5] [--workers 2]
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import requests
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from dicomrst.backends.dimse.sockets import disable_nagle
from common import Gateway, Orthanc, free_port, gateway_config, report, report_memory, start_orthanc, timed_in_turn
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import receiver_of

FLOOR_AET = "BENCHFLOOR"


def fill(orthanc: Orthanc, instances: int) -> str:
    study = generate_study(random.Random(100), n_series=2, instances_per_series=instances // 2, rows=512, columns=512)

    def upload(dataset) -> None:
        buffer = BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        orthanc.upload(buffer.getvalue())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, study))
    return str(study[0].StudyInstanceUID)


class FloorReceiver:
    """A bare pynetdicom Storage SCP keeping what it receives in memory."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[bytes] = []
        self.first_arrival: float | None = None
        ae = AE(ae_title=FLOOR_AET)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.maximum_pdu_size = 0
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store), (evt.EVT_CONN_OPEN, disable_nagle)])

    def _store(self, event) -> int:
        if not self.received:
            self.first_arrival = time.perf_counter()
        self.received.append(event.encoded_dataset())
        return 0x0000


def floor_move(orthanc: Orthanc, receiver: FloorReceiver, study_uid: str, expected: int,
               first_arrivals: list[float]) -> None:
    from pydicom import Dataset

    started = time.perf_counter()
    receiver.received.clear()
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    # TCP_NODELAY as on the gateway's associations: without it each small PDU can wait ~40 ms.
    association = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet,
                               evt_handlers=[(evt.EVT_CONN_OPEN, disable_nagle)])
    for _status, _ in association.send_c_move(identifier, FLOOR_AET, StudyRootQueryRetrieveInformationModelMove):
        pass
    association.release()
    assert len(receiver.received) == expected, len(receiver.received)
    assert receiver.first_arrival is not None
    first_arrivals.append(receiver.first_arrival - started)


def gateway_retrieve(url: str, first_byte: list[float]) -> None:
    started = time.perf_counter()
    size = 0
    with requests.get(url, stream=True, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1 << 20):
            if size == 0:
                first_byte.append(time.perf_counter() - started)
            size += len(chunk)
    assert size > 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomrst-bench-"))
    orthanc = start_orthanc(work / "orthanc")
    # The retrieve cache off: every request is a C-MOVE, as the floor is (bench/viewer.py measures the cache).
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "cache": {"enabled": False}}])
    gateway = Gateway(config, work, workers=args.workers)
    floor_receiver = FloorReceiver()
    try:
        study_uid = fill(orthanc, args.instances)
        orthanc.add_modality(*receiver_of(config))
        orthanc.add_modality(FLOOR_AET, floor_receiver.port)
        gateway.start()
        url = f"{gateway.url}/aets/{orthanc.aet}/studies/{study_uid}"
        first_bytes: list[float] = []
        floor_first: list[float] = []
        gateway_times, floor_times, orthanc_times = timed_in_turn([
            lambda: gateway_retrieve(url, first_bytes),
            lambda: floor_move(orthanc, floor_receiver, study_uid, args.instances, floor_first),
            lambda: requests.get(f"{orthanc.dicomweb_url}/studies/{study_uid}", timeout=300).raise_for_status(),
        ], args.repeats)
        ratio = report(f"WADO-RS study of {args.instances} instances of 512x512x16 bit "
                       f"({args.instances * 0.5:.0f} MB), {args.workers} gunicorn workers",
                       gateway_times, floor_times, {"orthanc dicomweb (ref)": orthanc_times}, target=1.05)
        ttfb = statistics.median(first_bytes[1:]) / statistics.median(gateway_times)
        print(f"  time to first byte: median {statistics.median(first_bytes[1:]) * 1000:.1f} ms, "
              f"{ttfb * 100:.1f}% of the total (target <= 5%); the floor's first instance arrives after "
              f"{statistics.median(floor_first[1:]) * 1000:.1f} ms")
        report_memory(gateway)
        print(f"  ratio gateway/floor {ratio:.2f} (target <= 1.05)")
    finally:
        gateway.stop()
        orthanc.stop()
        if floor_receiver.server is not None:
            floor_receiver.server.shutdown()


if __name__ == "__main__":
    main()
