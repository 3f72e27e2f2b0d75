"""C-GET next to C-MOVE: the same Orthanc behind two AETs of the gateway, one retrieving by C-MOVE through
the receiver and one by C-GET (`wado-rs.method: get`), the retrieve cache off on both so that every
request is a retrieval. Times one frame of one instance (each request a new retrieval) and a series of
60 512x512 instances, six frames at a time as a viewer asks, and the series as one WADO-RS request.

    python bench/cget.py [--instances 60] [--repeats 7] [--workers 2]
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from common import Gateway, gateway_config, part10, start_orthanc, timed_in_turn
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import receiver_of

FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def show(title: str, move: list[float], get: list[float], target: float = 1.2) -> None:
    print(f"\n{title}")
    for name, durations in (("C-MOVE", move), ("C-GET", get)):
        print(f"  {name:<8} median {statistics.median(durations) * 1000:8.1f} ms   min {min(durations) * 1000:8.1f}"
              f"   max {max(durations) * 1000:8.1f} ms   runs {len(durations)}")
    print(f"  ratio C-GET/C-MOVE {statistics.median(get) / statistics.median(move):.2f} (target <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomrst-bench-"))
    orthanc = start_orthanc(work / "orthanc")
    series = generate_study(random.Random(61), n_series=1, instances_per_series=args.instances, rows=512, columns=512)
    entry = {"host": "127.0.0.1", "port": orthanc.dicom_port, "cache": {"enabled": False}}
    # The receiver takes C-STOREs from the AE titles of configured PACS: Orthanc calls as itself.
    config = gateway_config([{"aet": "BYMOVE", **entry, "wado-rs": {"calling-aets": [orthanc.aet]}},
                             {"aet": "BYGET", **entry, "wado-rs": {"method": "get"}}])
    gateway = Gateway(config, work, workers=args.workers)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(orthanc.upload, [part10(d) for d in series]))
        orthanc.add_modality(*receiver_of(config))
        gateway.start()
        base = f"/studies/{series[0].StudyInstanceUID}/series/{series[0].SeriesInstanceUID}"

        def frame_of(aet: str, index: int) -> Callable[[], None]:
            url = f"{gateway.url}/aets/{aet}{base}/instances/{series[index].SOPInstanceUID}/frames/1"
            return lambda: requests.get(url, headers={"Accept": FRAMES_ACCEPT}, timeout=60).raise_for_status()

        def all_frames(aet: str) -> Callable[[], None]:
            fetches = [frame_of(aet, index) for index in range(len(series))]

            def run() -> None:
                with ThreadPoolExecutor(6) as pool:
                    list(pool.map(lambda fetch: fetch(), fetches))
            return run

        def whole_series(aet: str) -> Callable[[], None]:
            url = f"{gateway.url}/aets/{aet}{base}"
            return lambda: requests.get(url, timeout=120).raise_for_status()

        # C-MOVE and C-GET in turn on every round, so that Orthanc's and the machine's drift falls on both.
        show("one frame of one 512x512 instance",
             *timed_in_turn([frame_of("BYMOVE", 0), frame_of("BYGET", 0)], args.repeats * 3))
        show(f"{args.instances} frames, six at a time (a viewer scrolling a series)",
             *timed_in_turn([all_frames("BYMOVE"), all_frames("BYGET")], args.repeats))
        show(f"the series of {args.instances} instances in one request",
             *timed_in_turn([whole_series("BYMOVE"), whole_series("BYGET")], args.repeats))
    finally:
        gateway.stop()
        orthanc.stop()


if __name__ == "__main__":
    main()
