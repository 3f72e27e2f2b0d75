"""Thumbnails of a study list, as a viewer's study browser asks for them: `/studies/{study}/thumbnail` for
each of 50 studies over 6 connections, through the gateway cold (a new, empty retrieve cache) and warm,
next to Orthanc's own DICOMweb `/rendered` of the same representative instance (the middle one of the
first series) on the same data. Prints the time for all thumbnails (median and range over the runs) and
the retrievals per thumbnail from the gateway's /metrics.

Targets (the rendered issue): warm at most 1.2x Orthanc's; cold at most one single-instance retrieval
per thumbnail.

    python bench/rendered.py [--studies 50] [--runs 3] [--workers 2]
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from pydicom import Dataset

from common import Gateway, gateway_config, part10, start_orthanc
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import receiver_of

CONNECTIONS = 6


def representative(study: list[Dataset]) -> Dataset:
    first = min({(int(d.SeriesNumber), d.SeriesInstanceUID) for d in study})[1]
    in_order = sorted((d for d in study if d.SeriesInstanceUID == first), key=lambda d: int(d.InstanceNumber))
    return in_order[len(in_order) // 2]


def fetch_all(urls: list[str]) -> float:
    def fetch(url: str) -> None:
        response = requests.get(url, headers={"Accept": "image/jpeg"}, timeout=120)
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(fetch, urls))
    return time.perf_counter() - started


def shown(durations: list[float]) -> str:
    return f"{statistics.median(durations) * 1000:7.0f} ms ({min(durations) * 1000:.0f}-{max(durations) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(15)
    studies = [generate_study(rng, n_series=2, instances_per_series=5, rows=256, columns=256)
               for _ in range(args.studies)]
    with tempfile.TemporaryDirectory() as folder:
        orthanc = start_orthanc(Path(folder) / "orthanc")
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda d: orthanc.upload(part10(d)), [d for study in studies for d in study]))
            config: dict[str, Any] = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}])
            orthanc.add_modality(*receiver_of(config))
            cold: list[float] = []
            warm: list[float] = []
            per_thumbnail: list[float] = []
            gateway: Gateway | None = None
            for run in range(args.runs):
                directory = Path(folder) / f"gateway-{run}"
                directory.mkdir()
                config["server"]["cache"] = {"path": str(directory / "cache")}
                gateway = Gateway(config, directory, workers=args.workers)
                gateway.start()
                urls = [f"{gateway.url}/aets/{orthanc.aet}/studies/{study[0].StudyInstanceUID}/thumbnail"
                        for study in studies]
                before = gateway.retrievals()
                cold.append(fetch_all(urls))
                time.sleep(1)  # the retrievals' counters are written when they end
                per_thumbnail.append((gateway.retrievals() - before) / len(urls))
                warm.append(fetch_all(urls))
                gateway.stop()
            reference_urls = []
            for study in studies:
                middle = representative(study)
                reference_urls.append(f"{orthanc.dicomweb_url}/studies/{middle.StudyInstanceUID}/series/"
                                      f"{middle.SeriesInstanceUID}/instances/{middle.SOPInstanceUID}/rendered")
            fetch_all(reference_urls)  # Orthanc's caches warmed, as ours are in the warm runs
            reference = [fetch_all(reference_urls) for _ in range(args.runs)]
            print(f"\nthumbnails of {args.studies} studies (2 series of 5 instances of 256x256), {CONNECTIONS} "
                  f"connections, {args.runs} runs")
            print(f"  gateway, cold            all thumbnails {shown(cold)}   retrievals per thumbnail "
                  f"{max(per_thumbnail):.2f} (target <= 1, each of one instance)")
            print(f"  gateway, warm            all thumbnails {shown(warm)}")
            print(f"  orthanc /rendered (ref)  all thumbnails {shown(reference)}")
            print(f"  warm/orthanc {statistics.median(warm) / statistics.median(reference):.2f} (target <= 1.2)   "
                  f"cold/orthanc {statistics.median(cold) / statistics.median(reference):.2f}")
        finally:
            orthanc.stop()


if __name__ == "__main__":
    main()
