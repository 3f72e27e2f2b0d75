"""QIDO-RS: the gateway listing ~600 studies at study level, next to the floor: a bare pynetdicom
C-FIND (TCP_NODELAY on its socket, as on the gateway's) with the same return keys plus pydicom's
conversion to DICOM JSON (``to_json_dict``), against the same Orthanc; and Orthanc's own DICOMweb.

    python bench/qido.py [--studies 600] [--repeats 15] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import requests
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from common import Gateway, Orthanc, gateway_config, report, start_orthanc, timed_in_turn
from dicomrst.backends.dimse.identifier import cfind_identifier
from dicomrst.backends.dimse.sockets import disable_nagle
from dicomrst.dicomweb.query import QueryLevel, parse_qido_query
from dicomrst.sample_pacs.studies import generate_study


def fill(orthanc: Orthanc, count: int) -> None:
    rng = random.Random(600)

    def upload(_: int) -> None:
        (instance,) = generate_study(rng, n_series=1, instances_per_series=1, rows=8, columns=8)
        buffer = BytesIO()
        instance.save_as(buffer, enforce_file_format=True)
        orthanc.upload(buffer.getvalue())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, range(count)))


def floor_find(orthanc: Orthanc) -> int:
    identifier = cfind_identifier(parse_qido_query(QueryLevel.STUDY, []))
    identifier.SpecificCharacterSet = "ISO_IR 192"
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    # TCP_NODELAY as on the gateway's associations: without it each small PDU can wait ~40 ms.
    association = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet,
                               evt_handlers=[(evt.EVT_CONN_OPEN, disable_nagle)])
    matches: list[Dataset] = []
    for status, match in association.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if match is not None and status.Status in (0xFF00, 0xFF01):
            matches.append(match)
    association.release()
    # The floor's conversion is pydicom's own, as a bare client would use it.
    body = json.dumps([match.to_json_dict(suppress_invalid_tags=True) for match in matches],
                      ensure_ascii=False).encode()
    return len(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomrst-bench-"))
    orthanc = start_orthanc(work / "orthanc")
    gateway = Gateway(gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}]),
                      work, workers=args.workers)
    try:
        fill(orthanc, args.studies)
        gateway.start()
        url = f"{gateway.url}/aets/{orthanc.aet}/studies"
        listed = len(requests.get(url, timeout=60).json())
        assert listed == args.studies, f"the gateway listed {listed} studies, expected {args.studies}"

        def through_gateway() -> None:
            response = requests.get(url, timeout=60)
            response.raise_for_status()
            assert len(response.content) > 0

        gateway_times, floor_times, orthanc_times = timed_in_turn([
            through_gateway,
            lambda: floor_find(orthanc),
            lambda: requests.get(f"{orthanc.dicomweb_url}/studies", timeout=60).raise_for_status(),
        ], args.repeats)
        report(f"QIDO-RS /studies, {args.studies} studies, {args.workers} gunicorn workers",
               gateway_times, floor_times, {"orthanc dicomweb (ref)": orthanc_times}, target=1.0)
        print(f"  ratio gateway/orthanc {statistics.median(gateway_times) / statistics.median(orthanc_times):.2f}"
              " (target <= 1.3)")
    finally:
        gateway.stop()
        orthanc.stop()


if __name__ == "__main__":
    main()
