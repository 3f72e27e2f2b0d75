"""QIDO-RS on an S3 AET, answered from the index of its bucket: N studies of one instance each in one
moto bucket, indexed into SQLite (AET LITE) and into PostgreSQL (AET PG), next to Orthanc's own DICOMweb
holding the same studies. First the time `dicomrst index` takes for each index, then three study
searches (a patient name pattern, a StudyDate range of ~10 % of the studies, a page of 100) through the
gateway on either index and on Orthanc.

    python bench/s3_qido.py [--studies 10000] [--repeats 7] [--workers 2] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

import requests
import yaml
from pydicom import Dataset

from common import Gateway, gateway_config, part10, start_orthanc, timed
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import REPO, MotoS3, start_postgres

BUCKET = "bench-qido"
JSON = {"Accept": "application/dicom+json"}
SUMMARY = re.compile(r"indexed (\d+) \((\d+)/s\)")
INDEX_TARGET = 200  # instances per second
STUDY_UID = "0020000D"


def generate(count: int) -> list[tuple[Dataset, bytes]]:
    rng = random.Random(10_000)
    studies = []
    for _ in range(count):
        (instance,) = generate_study(rng, n_series=1, instances_per_series=1, rows=8, columns=8)
        studies.append((instance, part10(instance)))
    return studies


def key_of(dataset: Dataset) -> str:
    return f"{dataset.StudyInstanceUID}/{dataset.SeriesInstanceUID}/{dataset.SOPInstanceUID}.dcm"


def step(what: str, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    print(f"{what}: {time.perf_counter() - started:.1f} s", flush=True)


def run_index(aet: str, config_path: Path, concurrency: int, studies: int) -> None:
    command = [sys.executable, "-m", "dicomrst.cli", "index", aet, "--config", str(config_path),
               "--concurrency", str(concurrency), "--no-progress"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    print(f"\n$ {' '.join(['python', *command[1:]])}")
    for line in (result.stderr.strip().splitlines() + result.stdout.strip().splitlines()):
        print(f"  | {line}")
    if result.returncode != 0:
        raise SystemExit(f"dicomrst index {aet} exited with code {result.returncode}")
    found = SUMMARY.search(result.stdout)
    if found is None:
        raise SystemExit(f"dicomrst index {aet}: no summary line in its output")
    indexed, rate = int(found.group(1)), int(found.group(2))
    assert indexed == studies, f"{aet}: indexed {indexed} instances, expected {studies}"
    print(f"  {aet}: indexed {indexed} instances at {rate}/s by its summary, {indexed / wall:.0f}/s over the "
          f"whole command ({wall:.1f} s, interpreter start included) (target >= {INDEX_TARGET}/s)", flush=True)


def search(url: str) -> list[dict]:
    response = requests.get(url, headers=JSON, timeout=300)
    response.raise_for_status()
    return response.json() if response.status_code == 200 else []


def fetch(url: str) -> None:
    """What is timed: the whole answer, read but not parsed."""
    response = requests.get(url, headers=JSON, timeout=300)
    response.raise_for_status()
    assert response.content or response.status_code == 204


def study_uids(matches: list[dict]) -> set[str]:
    return {match[STUDY_UID]["Value"][0] for match in matches}


def print_times(title: str, rows: dict[str, list[float]], floor: str, target: float) -> None:
    print(f"\n{title}")
    for name, durations in rows.items():
        print(f"  {name:<20} median {statistics.median(durations) * 1000:8.1f} ms   "
              f"min {min(durations) * 1000:8.1f}   max {max(durations) * 1000:8.1f} ms   runs {len(durations)}")
    for name, durations in rows.items():
        if name != floor:
            ratio = statistics.median(durations) / statistics.median(rows[floor])
            print(f"  ratio {name}/{floor} {ratio:.2f} (target <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="objects `dicomrst index` reads at once")
    args = parser.parse_args()
    # moto_server is a script of the interpreter's environment, which need not be on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    work = Path(tempfile.mkdtemp(prefix="dicomrst-bench-"))
    mismatches: list[str] = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)  # last, once every peer has stopped
        started = time.perf_counter()
        studies: list[tuple[Dataset, bytes]] = []
        step(f"generated {args.studies} studies of one 8x8 instance", lambda: studies.extend(generate(args.studies)))

        for folder in ("orthanc", "moto", "postgres", "gateway"):
            (work / folder).mkdir()
        orthanc = start_orthanc(work / "orthanc")
        stack.callback(orthanc.stop)
        moto = MotoS3(work / "moto")
        moto.start()
        stack.callback(moto.stop)
        postgres = start_postgres(work / "postgres")
        stack.callback(postgres.stop)

        with ThreadPoolExecutor(8) as pool:
            step("uploaded to Orthanc (8 at once)", lambda: list(pool.map(orthanc.upload, (b for _, b in studies))))
        client = moto.client()
        client.create_bucket(Bucket=BUCKET)

        def put(study: tuple[Dataset, bytes]) -> None:
            client.put_object(Bucket=BUCKET, Key=key_of(study[0]), Body=study[1])

        with ThreadPoolExecutor(16) as pool:
            step("put into the moto bucket (16 at once)", lambda: list(pool.map(put, studies)))

        s3 = {"backend": "S3", "endpoint": moto.endpoint, "endpoint-style": "path", "bucket": BUCKET,
              "region": "us-east-1", "credentials": {"access-key": "testing", "secret-key": "testing"}}
        config = gateway_config([{"aet": "LITE", **s3, "index": f"sqlite:///{work / 'lite.sqlite'}"},
                                 {"aet": "PG", **s3, "index": postgres.create_database("bench")}])
        config["server"]["cache"] = {"path": str(work / "cache")}
        config_path = work / "dicomrst.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        for aet in ("LITE", "PG"):
            run_index(aet, config_path, args.concurrency, args.studies)

        gateway = Gateway(config, work / "gateway", workers=args.workers)
        stack.callback(gateway.stop)
        gateway.start()

        family = str(studies[0][0].PatientName).split("^")[0]
        dates = sorted(str(dataset.StudyDate) for dataset, _ in studies)
        low, high = dates[len(dates) * 45 // 100], dates[len(dates) * 55 // 100]
        queries = {
            "PatientName pattern": {"PatientName": f"{family}*"},
            "StudyDate range": {"StudyDate": f"{low}-{high}"},
            "a page of 100": {"limit": "100"},
        }
        print(f"\ngateway {args.workers} gunicorn workers; {args.studies} studies in Orthanc and in the bucket",
              flush=True)
        for name, params in queries.items():
            query = urlencode(params, safe="*?^,")
            urls = {"gateway LITE": f"{gateway.url}/aets/LITE/studies?{query}",
                    "gateway PG": f"{gateway.url}/aets/PG/studies?{query}",
                    "Orthanc": f"{orthanc.dicomweb_url}/studies?{query}"}
            answers = {target: search(url) for target, url in urls.items()}
            counts = {target: len(matches) for target, matches in answers.items()}
            expected = 100 if "limit" in params else counts["Orthanc"]
            same = all(count == expected for count in counts.values())
            if "limit" not in params and same:
                # Beyond the counts: the same studies.
                same = study_uids(answers["gateway LITE"]) == study_uids(answers["gateway PG"]) \
                    == study_uids(answers["Orthanc"])
            counted = ", ".join(f"{target} {count}" for target, count in counts.items())
            print(f"\n/studies?{query}: {counted} matches "
                  f"({100 * counts['Orthanc'] / args.studies:.1f} % of the studies)"
                  f"{'' if same else '  MISMATCH'}", flush=True)
            if not same:
                mismatches.append(name)
            times = {target: timed(lambda url=url: fetch(url), args.repeats) for target, url in urls.items()}
            print_times(f"QIDO-RS /studies?{query}", times, "Orthanc", target=1.0)
        print(f"\nwhole run {time.perf_counter() - started:.0f} s")
    if mismatches:
        raise SystemExit(f"the gateway and Orthanc disagree on: {', '.join(mismatches)}")


if __name__ == "__main__":
    main()
