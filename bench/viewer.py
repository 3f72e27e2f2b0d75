"""A viewer opening studies the way OHIF does: QIDO of the study and its series, each series' metadata,
then every frame of every instance over 6 connections (`frames/{n}` with OHIF's Accept). Run through the
gateway in front of Orthanc, cold and then a second time, and against Orthanc's own DICOMweb on the same
data. Two studies: a CT series of 512x512 slices and one 30-frame multi-frame instance.

Prints the time to the first frame, the time to all frames, and the C-MOVEs the gateway issued (from its
/metrics). The figures are what a retrieve cache is measured against.

    python bench/viewer.py [--slices 200] [--frames 30] [--workers 2] [--cache]
"""
from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy
import requests
from pydicom import Dataset
from pydicom.uid import generate_uid

from common import Gateway, Orthanc, gateway_config, start_orthanc
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import receiver_of

FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
CONNECTIONS = 6  # what a browser opens to one host


def part10(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def fill(orthanc: Orthanc, slices: int, frames: int) -> list[str]:
    """Upload the CT series and the multi-frame study; their Study Instance UIDs."""
    ct = generate_study(random.Random(13), n_series=1, instances_per_series=slices, modalities=("CT",),
                        rows=512, columns=512)
    clip = generate_study(random.Random(14), n_series=1, instances_per_series=1, modalities=("MR",),
                          rows=512, columns=512)[0]
    clip.SOPInstanceUID = clip.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    clip.NumberOfFrames = frames
    clip.BitsAllocated, clip.BitsStored, clip.HighBit, clip.PixelRepresentation = 8, 8, 7, 0
    clip.PixelData = numpy.random.default_rng(14).integers(0, 255, (frames, 512, 512), dtype=numpy.uint8).tobytes()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda dataset: orthanc.upload(part10(dataset)), [*ct, clip]))
    return [str(ct[0].StudyInstanceUID), str(clip.StudyInstanceUID)]


@dataclass
class Opening:
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
    first: list[float] = []

    def fetch(url: str) -> None:
        response = requests.get(url, headers={"Accept": FRAMES_ACCEPT}, timeout=300)
        response.raise_for_status()
        if not first:
            first.append(time.perf_counter() - started)

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(fetch, urls))
    return Opening(first[0] if first else float("nan"), time.perf_counter() - started, len(urls))


def moves(gateway: Gateway) -> float:
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text
    return sum(float(value) for value in
               re.findall(r'dicomrst_dimse_operations_total\{[^}]*operation="C-MOVE"[^}]*\} ([0-9.e+]+)', text))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", action="store_true", help="with the retrieve cache on (aets[].cache)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        orthanc = start_orthanc(Path(folder) / "orthanc")
        try:
            studies = fill(orthanc, args.slices, args.frames)
            entry = {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}
            if args.cache:
                entry["cache"] = {"enabled": True}
            config = gateway_config([entry])
            config["server"]["cache"] = {"path": str(Path(folder) / "cache")}
            orthanc.add_modality(*receiver_of(config))
            (Path(folder) / "gateway").mkdir()
            gateway = Gateway(config, Path(folder) / "gateway", workers=args.workers)
            gateway.start()
            try:
                names = (f"CT series of {args.slices} slices", f"one instance of {args.frames} frames")
                for name, study_uid in zip(names, studies):
                    print(f"\n{name}")
                    for label, root in (("gateway, cold", f"{gateway.url}/aets/{orthanc.aet}"),
                                        ("gateway, again", f"{gateway.url}/aets/{orthanc.aet}"),
                                        ("orthanc dicomweb (ref)", orthanc.dicomweb_url)):
                        before = moves(gateway)
                        opening = open_study(root, study_uid)
                        issued = moves(gateway) - before
                        print(f"  {label:<24} first frame {opening.first_frame * 1000:8.1f} ms   "
                              f"all {opening.frames} frames {opening.all_frames * 1000:9.1f} ms   "
                              f"C-MOVEs {issued:5.0f}")
            finally:
                gateway.stop()
        finally:
            orthanc.stop()


if __name__ == "__main__":
    main()
