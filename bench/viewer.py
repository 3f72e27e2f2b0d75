"""A viewer opening studies the way OHIF does: QIDO of the study and its series, each series' metadata,
then every frame of every instance over 6 connections (`frames/{n}` with OHIF's Accept).

Part 1, in front of Orthanc: the gateway cold (a new, empty retrieve cache each run), the gateway warm
(the same study again), and Orthanc's own DICOMweb on the same data (the reference; for a viewer the
floor is what the PACS's own web server does). Two studies: a CT series of 512x512 slices and one
multi-frame instance. For each: the time to the first frame and to all frames (median and range over
the runs), the C-MOVE/C-GETs issued per series and the bytes moved from the PACS against the series'
size, from the gateway's /metrics.

Part 2, the latency of a real PACS: the same cold opening of the CT series through the gateway in front
of the sample PACS, without and with `--latency-ms` before each C-MOVE sends anything. The latency
should be paid once per series, not once per frame.

Targets (the viewer issue): cold at most one retrieval per series, bytes moved at most 1.05x the
series, all frames at most 1.5x Orthanc's; warm no DIMSE at all and at most 1.2x Orthanc's; with the
latency, cold at most the cold time without it plus 0.6 s.

    python bench/viewer.py [--slices 200] [--frames 30] [--runs 5] [--workers 2] [--latency-ms 500]
        [--part all|orthanc|latency]
"""
from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy
import requests
from pydicom.uid import generate_uid

from common import Gateway, free_port, gateway_config, part10, start_orthanc
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import receiver_of
from wado import FLOOR_AET, FloorReceiver, floor_move

FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
CONNECTIONS = 6  # what a browser opens to one host


@dataclass
class Study:
    name: str
    study_uid: str
    files: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(file) for file in self.files)


def make_studies(slices: int, frames: int) -> list[Study]:
    ct = generate_study(random.Random(13), n_series=1, instances_per_series=slices, modalities=("CT",),
                        rows=512, columns=512)
    clip = generate_study(random.Random(14), n_series=1, instances_per_series=1, modalities=("MR",),
                          rows=512, columns=512)[0]
    clip.SOPInstanceUID = clip.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    clip.NumberOfFrames = frames
    clip.BitsAllocated, clip.BitsStored, clip.HighBit, clip.PixelRepresentation = 8, 8, 7, 0
    clip.PixelData = numpy.random.default_rng(14).integers(0, 255, (frames, 512, 512), dtype=numpy.uint8).tobytes()
    return [Study(f"CT series of {slices} slices", str(ct[0].StudyInstanceUID), [part10(d) for d in ct]),
            Study(f"one instance of {frames} frames", str(clip.StudyInstanceUID), [part10(clip)])]


@dataclass
class Opening:
    metadata: float  # until the last series' metadata is in, from which the frames are asked
    first_frame: float
    all_frames: float
    frames: int


def open_study(root: str, study_uid: str) -> Opening:
    """What OHIF asks when a study is opened, timed from the first request."""
    session = requests.Session()
    started = time.perf_counter()
    session.get(f"{root}/studies", params={"StudyInstanceUID": study_uid}, timeout=120).raise_for_status()
    series = session.get(f"{root}/studies/{study_uid}/series", timeout=120).json()
    urls = []
    for row in series:
        series_uid = row["0020000E"]["Value"][0]
        metadata = session.get(f"{root}/studies/{study_uid}/series/{series_uid}/metadata", timeout=300)
        metadata.raise_for_status()
        for instance in metadata.json():
            sop_uid = instance["00080018"]["Value"][0]
            count = int(instance.get("00280008", {}).get("Value", [1])[0])
            base = f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
            urls += [f"{base}/frames/{number}" for number in range(1, count + 1)]
    listed = time.perf_counter() - started
    first: list[float] = []

    def fetch(url: str) -> None:
        response = requests.get(url, headers={"Accept": FRAMES_ACCEPT}, timeout=300)
        response.raise_for_status()
        if not first:
            first.append(time.perf_counter() - started)

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(fetch, urls))
    return Opening(listed, first[0] if first else float("nan"), time.perf_counter() - started, len(urls))


def settle(gateway: Gateway) -> None:
    """Until the retrievals under way have ended (a frame response can end before its series is in)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and gateway.metric("dicomrst_moves_in_flight") > 0:
        time.sleep(0.1)


@dataclass
class Runs:
    openings: list[Opening]
    retrievals: list[float]
    moved: list[float]

    def all_frames(self) -> float:
        return statistics.median(o.all_frames for o in self.openings)


def measure(runs: int, gateway: Gateway | None, root: Callable[[], str], study: Study,
            before_each: Callable[[], None] = lambda: None) -> Runs:
    result = Runs([], [], [])
    for _ in range(runs):
        before_each()
        counted = (gateway.retrievals(), gateway.metric("dicomrst_retrieved_bytes_total")) if gateway else (0, 0)
        result.openings.append(open_study(root(), study.study_uid))
        if gateway is not None:
            settle(gateway)
            result.retrievals.append(gateway.retrievals() - counted[0])
            result.moved.append(gateway.metric("dicomrst_retrieved_bytes_total") - counted[1])
    return result


def timed_once(operation: Callable[[], object]) -> float:
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


def spread(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"


def show(label: str, runs: Runs, study: Study) -> None:
    line = (f"  {label:<24} metadata {spread([o.metadata for o in runs.openings])}"
            f"   first frame {spread([o.first_frame for o in runs.openings])}   "
            f"all {runs.openings[0].frames} frames {spread([o.all_frames for o in runs.openings])}")
    if runs.retrievals:
        line += (f"   retrievals/series {max(runs.retrievals):.0f}"
                 f"   moved {max(runs.moved) / study.size:.2f}x the series")
    print(line)


class RestartingGateway:
    """The gateway, restarted on a new, empty cache folder whenever a cold run needs one."""

    def __init__(self, config: dict[str, Any], folder: Path, workers: int) -> None:
        self.config, self.folder, self.workers = config, folder, workers
        self.runs = 0
        self.gateway: Gateway | None = None
        self.cold()

    def cold(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.runs += 1
        directory = self.folder / f"gateway-{self.runs}"
        directory.mkdir()
        self.config["server"]["cache"] = {"path": str(directory / "cache")}
        self.gateway = Gateway(self.config, directory, workers=self.workers)
        self.gateway.start()

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()


def part_orthanc(args: argparse.Namespace, studies: list[Study], folder: Path) -> None:
    orthanc = start_orthanc(folder / "orthanc")
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(orthanc.upload, [file for study in studies for file in study.files]))
        config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}])
        orthanc.add_modality(*receiver_of(config))
        floor_receiver = FloorReceiver()
        orthanc.add_modality(FLOOR_AET, floor_receiver.port)
        gateways = RestartingGateway(config, folder, args.workers)
        try:
            for study in studies:
                print(f"\n{study.name} ({study.size / 1e6:.1f} MB), {args.runs} runs each")

                def gateway() -> Gateway:
                    assert gateways.gateway is not None
                    return gateways.gateway

                def root() -> str:
                    return f"{gateway().url}/aets/{orthanc.aet}"

                open_study(orthanc.dicomweb_url, study.study_uid)  # Orthanc's own caches warmed, as ours are warm
                cold = Runs([], [], [])
                for _ in range(args.runs):
                    gateways.cold()
                    one = measure(1, gateway(), root, study)
                    cold.openings += one.openings
                    cold.retrievals += one.retrievals
                    cold.moved += one.moved
                warm = measure(args.runs, gateway(), root, study)
                reference = measure(args.runs, None, lambda: orthanc.dicomweb_url, study)
                # The floor under any cold opening: the one C-MOVE of the series, bare pynetdicom into memory.
                moves = [timed_once(partial(floor_move, orthanc, floor_receiver, study.study_uid,
                                            len(study.files), [])) for _ in range(args.runs)]
                show("gateway, cold", cold, study)
                show("gateway, warm", warm, study)
                show("orthanc dicomweb (ref)", reference, study)
                print(f"  cold/orthanc {cold.all_frames() / reference.all_frames():.2f} (target <= 1.5)   "
                      f"warm/orthanc {warm.all_frames() / reference.all_frames():.2f} (target <= 1.2)   "
                      f"warm retrievals {max(warm.retrievals):.0f} (target 0)")
                print(f"  floor: one bare C-MOVE of the series {spread(moves)}"
                      f" = {statistics.median(moves) / reference.all_frames():.2f}x Orthanc's whole opening;"
                      f" cold - C-MOVE {(cold.all_frames() - statistics.median(moves)) * 1000:.0f} ms,"
                      f" warm {warm.all_frames() * 1000:.0f} ms")
        finally:
            gateways.stop()
            if floor_receiver.server is not None:
                floor_receiver.server.shutdown()
    finally:
        orthanc.stop()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the sample PACS exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the sample PACS did not come up")


def part_latency(args: argparse.Namespace, study: Study, folder: Path) -> None:
    storage = folder / "sample-storage"
    storage.mkdir()
    for index, file in enumerate(study.files):
        (storage / f"{index:05d}.dcm").write_bytes(file)
    config = gateway_config([])
    receiver_aet, receiver_port = receiver_of(config)
    pacs_processes = []
    for aet, latency in (("FAST", 0.0), ("SLOW", args.latency_ms)):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "dicomrst.cli", "sample-pacs", "--storage", str(storage), "--no-seed",
             "--aet", aet, "--port", str(port), "--latency-ms", str(latency),
             "--destination", f"{receiver_aet}=127.0.0.1:{receiver_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pacs_processes.append(process)
        _wait_for_port(port, process)
        config["aets"].append({"aet": aet, "host": "127.0.0.1", "port": port})
    try:
        (folder / "latency").mkdir()
        gateways = RestartingGateway(config, folder / "latency", args.workers)
        try:
            print(f"\n{study.name} through the gateway in front of the sample PACS, cold, {args.runs} runs each"
                  " (the two PACS taken in turn, so that drift of the machine falls on both alike)")
            results = {aet: Runs([], [], []) for aet in ("FAST", "SLOW")}
            for _ in range(args.runs):
                for aet, runs in results.items():
                    def root(aet: str = aet) -> str:
                        assert gateways.gateway is not None
                        return f"{gateways.gateway.url}/aets/{aet}"

                    gateways.cold()
                    assert gateways.gateway is not None
                    one = measure(1, gateways.gateway, root, study)
                    runs.openings += one.openings
                    runs.retrievals += one.retrievals
                    runs.moved += one.moved
            for aet, runs in results.items():
                show("no latency" if aet == "FAST" else f"latency {args.latency_ms:.0f} ms", runs, study)
            paid = [slow.all_frames - fast.all_frames
                    for fast, slow in zip(results["FAST"].openings, results["SLOW"].openings)]
            print(f"  latency paid: {(results['SLOW'].all_frames() - results['FAST'].all_frames()) * 1000:.0f} ms"
                  f" between the medians; run by run {spread(paid)}"
                  f" (target <= {args.latency_ms + 100:.0f} ms: once per series)")
        finally:
            gateways.stop()
    finally:
        for process in pacs_processes:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--part", choices=("all", "orthanc", "latency"), default="all")
    args = parser.parse_args()
    studies = make_studies(args.slices, args.frames)
    with tempfile.TemporaryDirectory() as folder:
        if args.part in ("all", "orthanc"):
            part_orthanc(args, studies, Path(folder))
        if args.part in ("all", "latency"):
            part_latency(args, studies[0], Path(folder))


if __name__ == "__main__":
    main()
