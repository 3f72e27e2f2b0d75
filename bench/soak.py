"""Soak: a bounded, mixed DICOMweb load on a gateway of its own for a few minutes, to see errors, latency
and memory of every gateway process over time rather than one operation's speed.

Starts its own Orthanc and gateway (gunicorn, gevent workers, the move receiver) on free loopback ports,
loads a handful of generated studies, then runs QIDO-RS at every level, WADO-RS retrievals (study, series,
instance), metadata, frames and STOW-RS of fresh instances from a pool of client threads until the deadline
or the request cap, whichever comes first. Reports per operation: count, errors with examples, latency
p50/p90/p99/max; and the resident memory of the gunicorn master, each worker and the move receiver at the
start and at the end. Not part of the test run.

With ``--slow-clients N`` the load runs twice, for half the time each: alone, then beside N hostile slow
clients (half upload STOW-RS bodies a byte a second, half read WADO-RS series 1 KB a second, each
starting again whenever it is cut off), and the p99 latency of the normal load is compared (it should
stay within 2x).

    python bench/soak.py [--minutes 5] [--clients 16] [--workers 4] [--pool-size 16] [--max-requests 200000]
                         [--slow-clients 16]
"""
from __future__ import annotations

import argparse
import copy
import math
import random
import shutil
import socket
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import requests
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from common import Gateway, Orthanc, command_of, gateway_config, part10, peak_rss_mb, process_tree, start_orthanc
from dicomrst.backends.dimse.spool import spool_root
from dicomrst.config import parse_config
from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import PATIENTS, Patient, generate_study
from tests.integration.multipart import parse_multipart
from tests.peers import receiver_of

AET = "ORTHANC"
REQUEST_TIMEOUT = 60
BOUNDARY = "dicomrst-soak"
STOW_CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
ERROR_EXAMPLES = 3
PROGRESS_SECONDS = 30
# STOW-RS stores under a patient of its own, so the PatientID queries of the loaded studies keep their answers.
STOW_PATIENT = Patient("Soak^Stow", "PID-SOAK", "20000101", "O")


# ----------------------------------------------------------------------------------------- content


@dataclass(frozen=True)
class Content:
    """What the soak's Orthanc holds, to pick requests from and check answers against."""

    studies: list[list[Dataset]]
    stow_template: Dataset
    stow_study_uid: str
    stow_series_uid: str

    def series_of(self, study: list[Dataset]) -> dict[str, list[Dataset]]:
        series: dict[str, list[Dataset]] = defaultdict(list)
        for dataset in study:
            series[str(dataset.SeriesInstanceUID)].append(dataset)
        return series


def load_content(orthanc: Orthanc, studies: int, seed: int = 5150) -> Content:
    rng = random.Random(seed)
    generated = [generate_study(rng, patient=PATIENTS[number % len(PATIENTS)], n_series=2, instances_per_series=3,
                                rows=64, columns=64)
                 for number in range(studies)]
    for dataset in (instance for study in generated for instance in study):
        orthanc.upload(part10(dataset))
    # STOW-RS adds fresh instances to one series of a study of their own, so that the listings of all
    # studies and all series keep their size and their latency stays comparable from start to end.
    template = generate_study(rng, patient=STOW_PATIENT, n_series=1, instances_per_series=1, rows=64, columns=64)[0]
    return Content(generated, template, str(generate_uid()), str(generate_uid()))


# ----------------------------------------------------------------------------------- the operations


class Mismatch(Exception):
    """A 2xx answer whose content is wrong or incomplete."""


def url_of(gateway: Gateway, path: str) -> str:
    return f"{gateway.url}/aets/{AET}{path}"


def expect_ok(response: requests.Response) -> None:
    if not 200 <= response.status_code < 300:
        raise Mismatch(f"HTTP {response.status_code}: {response.text[:160]!r}")


def qido(session: requests.Session, gateway: Gateway, path: str, params: dict[str, str],
         keyword_tag: str | None = None, expected: set[str] | None = None) -> None:
    response = session.get(url_of(gateway, path), params=params, timeout=REQUEST_TIMEOUT)
    expect_ok(response)
    matches = response.json()
    if keyword_tag is not None and expected is not None:
        found = {match[keyword_tag]["Value"][0] for match in matches}
        if found != expected:
            raise Mismatch(f"{path}: {len(found)} matches, expected {len(expected)}")


def retrieve(session: requests.Session, gateway: Gateway, path: str, expected: list[Dataset]) -> None:
    response = session.get(url_of(gateway, path), timeout=REQUEST_TIMEOUT)
    expect_ok(response)
    # Raises on a body without its close delimiter: a retrieval that broke off part-way.
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    received = sorted(str(dcmread(BytesIO(body)).SOPInstanceUID) for _, body in parts)
    if received != sorted(str(d.SOPInstanceUID) for d in expected):
        raise Mismatch(f"{path}: {len(received)} instances, expected {len(expected)}")


def metadata(session: requests.Session, gateway: Gateway, path: str, expected: int) -> None:
    response = session.get(url_of(gateway, f"{path}/metadata"), timeout=REQUEST_TIMEOUT)
    expect_ok(response)
    if len(response.json()) != expected:
        raise Mismatch(f"{path}/metadata: {len(response.json())} documents, expected {expected}")


def frames(session: requests.Session, gateway: Gateway, instance: Dataset) -> None:
    path = (f"/studies/{instance.StudyInstanceUID}/series/{instance.SeriesInstanceUID}"
            f"/instances/{instance.SOPInstanceUID}/frames/1")
    response = session.get(url_of(gateway, path), timeout=REQUEST_TIMEOUT)
    expect_ok(response)
    ((_, body),) = parse_multipart(response.headers["Content-Type"], response.content)
    if body != instance.PixelData:
        raise Mismatch(f"{path}: frame differs from the original pixel data")


def stow(session: requests.Session, gateway: Gateway, content: Content, rng: random.Random) -> None:
    datasets = []
    for _ in range(rng.randint(1, 3)):
        # A deep copy: Dataset.copy() is shallow, and setting a UID on it changes the template too (and
        # every other client thread's copy).
        dataset = copy.deepcopy(content.stow_template)
        dataset.StudyInstanceUID = content.stow_study_uid
        dataset.SeriesInstanceUID = content.stow_series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        datasets.append(dataset)
    body = b"".join(write_multipart([part10(d) for d in datasets], "application/dicom", BOUNDARY))
    response = session.post(url_of(gateway, "/studies"), data=body, timeout=REQUEST_TIMEOUT,
                            headers={"Content-Type": STOW_CONTENT_TYPE, "Accept": "application/dicom+json"})
    expect_ok(response)
    stored = response.json().get("00081199", {}).get("Value", [])
    if response.status_code != 200 or len(stored) != len(datasets):
        raise Mismatch(f"STOW-RS {response.status_code}: {len(stored)} of {len(datasets)} stored")


Operation = Callable[[requests.Session, random.Random], None]


def operations(gateway: Gateway, content: Content) -> list[tuple[str, int, Operation]]:
    """(kind, weight, operation): each call picks its own study, series or instance."""
    studies = content.studies

    def pick_study(rng: random.Random) -> list[Dataset]:
        return rng.choice(studies)

    def pick_series(rng: random.Random) -> list[Dataset]:
        return rng.choice(list(content.series_of(pick_study(rng)).values()))

    def qido_studies(session: requests.Session, rng: random.Random) -> None:
        patient = rng.choice(PATIENTS)
        expected = {str(s[0].StudyInstanceUID) for s in studies if s[0].PatientID == patient.patient_id}
        if rng.random() < 0.5:
            qido(session, gateway, "/studies", {"PatientID": patient.patient_id}, "0020000D", expected)
        else:
            qido(session, gateway, "/studies", {})

    def qido_series(session: requests.Session, rng: random.Random) -> None:
        study = pick_study(rng)
        if rng.random() < 0.7:
            expected = set(content.series_of(study))
            qido(session, gateway, f"/studies/{study[0].StudyInstanceUID}/series", {}, "0020000E", expected)
        else:
            qido(session, gateway, "/series", {"Modality": rng.choice(("CT", "MR"))})

    def qido_instances(session: requests.Session, rng: random.Random) -> None:
        series = pick_series(rng)
        first = series[0]
        expected = {str(d.SOPInstanceUID) for d in series}
        if rng.random() < 0.7:
            path = f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/instances"
            qido(session, gateway, path, {}, "00080018", expected)
        else:
            qido(session, gateway, "/instances", {"SeriesInstanceUID": str(first.SeriesInstanceUID)},
                 "00080018", expected)

    def wado_study(session: requests.Session, rng: random.Random) -> None:
        study = pick_study(rng)
        retrieve(session, gateway, f"/studies/{study[0].StudyInstanceUID}", study)

    def wado_series(session: requests.Session, rng: random.Random) -> None:
        series = pick_series(rng)
        retrieve(session, gateway, f"/studies/{series[0].StudyInstanceUID}/series/{series[0].SeriesInstanceUID}",
                 series)

    def wado_instance(session: requests.Session, rng: random.Random) -> None:
        instance = rng.choice(pick_series(rng))
        retrieve(session, gateway, f"/studies/{instance.StudyInstanceUID}/series/{instance.SeriesInstanceUID}"
                                   f"/instances/{instance.SOPInstanceUID}", [instance])

    def wado_metadata(session: requests.Session, rng: random.Random) -> None:
        series = pick_series(rng)
        first = series[0]
        level = rng.randrange(3)
        if level == 0:
            study = pick_study(rng)
            metadata(session, gateway, f"/studies/{study[0].StudyInstanceUID}", len(study))
        elif level == 1:
            metadata(session, gateway, f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}",
                     len(series))
        else:
            metadata(session, gateway, f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
                                       f"/instances/{first.SOPInstanceUID}", 1)

    def wado_frames(session: requests.Session, rng: random.Random) -> None:
        frames(session, gateway, rng.choice(pick_series(rng)))

    def stow_rs(session: requests.Session, rng: random.Random) -> None:
        stow(session, gateway, content, rng)

    return [
        ("qido studies", 14, qido_studies),
        ("qido series", 13, qido_series),
        ("qido instances", 13, qido_instances),
        ("wado study", 8, wado_study),
        ("wado series", 8, wado_series),
        ("wado instance", 9, wado_instance),
        ("wado metadata", 12, wado_metadata),
        ("wado frames", 10, wado_frames),
        ("stow", 13, stow_rs),
    ]


# ------------------------------------------------------------------------------------------ the load


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    examples: list[str] = field(default_factory=list)


class Load:
    """Client threads issuing requests until the deadline or the request cap, recording each outcome."""

    def __init__(self, kinds: list[tuple[str, int, Operation]], deadline: float, max_requests: int) -> None:
        self.kinds = kinds
        self.deadline = deadline
        self.max_requests = max_requests
        self.issued = 0
        self.tallies: dict[str, Tally] = {kind: Tally() for kind, _, _ in kinds}
        self.lock = threading.Lock()

    def _claim(self) -> bool:
        with self.lock:
            if time.monotonic() >= self.deadline or self.issued >= self.max_requests:
                return False
            self.issued += 1
            return True

    def _record(self, kind: str, latency: float, error: str | None) -> None:
        with self.lock:
            tally = self.tallies[kind]
            tally.latencies.append(latency)
            if error is not None:
                tally.errors += 1
                if len(tally.examples) < ERROR_EXAMPLES:
                    tally.examples.append(error)

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        names = [kind for kind, _, _ in self.kinds]
        weights = [weight for _, weight, _ in self.kinds]
        work = {kind: operation for kind, _, operation in self.kinds}
        with requests.Session() as session:  # keep-alive, as a viewer or a pipeline would
            while self._claim():
                kind = rng.choices(names, weights)[0]
                started = time.perf_counter()
                error = None
                try:
                    work[kind](session, rng)
                except Exception as failure:
                    error = f"{type(failure).__name__}: {failure}"[:240]
                self._record(kind, time.perf_counter() - started, error)

    def progress(self) -> str:
        with self.lock:
            done = sum(len(t.latencies) for t in self.tallies.values())
            errors = sum(t.errors for t in self.tallies.values())
        return f"{done} requests, {errors} errors"


def run_load(load: Load, clients: int, started: float) -> None:
    threads = [threading.Thread(target=load.client, args=(seed,), daemon=True) for seed in range(clients)]
    for thread in threads:
        thread.start()
    next_report = time.monotonic() + PROGRESS_SECONDS
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=1)
        if time.monotonic() >= next_report:
            print(f"  [{time.monotonic() - started:5.0f} s] {load.progress()}", flush=True)
            next_report += PROGRESS_SECONDS


# ------------------------------------------------------------------------------------- slow clients


def slow_uploader(gateway: Gateway, stop: threading.Event) -> None:
    """STOW-RS headers, then a byte a second, again whenever the gateway ends it."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as connection:
                connection.sendall(
                    (f"POST /aets/{AET}/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {STOW_CONTENT_TYPE}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n").encode())
                while not stop.wait(1.0):
                    connection.sendall(b"1\r\nx\r\n")
        except OSError:
            stop.wait(0.5)


def slow_reader(gateway: Gateway, path: str, stop: threading.Event) -> None:
    """A WADO-RS retrieval read 1 KB a second, again whenever the gateway ends it."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as connection:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                while not stop.is_set() and connection.recv(1024):
                    stop.wait(1.0)
        except OSError:
            stop.wait(0.5)


def start_slow_clients(gateway: Gateway, content: Content, count: int, stop: threading.Event) -> list[threading.Thread]:
    threads = []
    for index in range(count):
        if index % 2:
            study = content.studies[index % len(content.studies)]
            path = f"{gateway_path(study[0])}"
            threads.append(threading.Thread(target=slow_reader, args=(gateway, path, stop), daemon=True))
        else:
            threads.append(threading.Thread(target=slow_uploader, args=(gateway, stop), daemon=True))
    for thread in threads:
        thread.start()
    return threads


def gateway_path(dataset: Dataset) -> str:
    return f"/aets/{AET}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"


def p99(load: Load) -> float:
    ordered = sorted(latency for tally in load.tallies.values() for latency in tally.latencies)
    return percentile(ordered, 0.99) if ordered else float("nan")


# ---------------------------------------------------------------------------------------- reporting


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def report_operations(load: Load, elapsed: float) -> None:
    print(f"\n{'operation':<16}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    everything: list[float] = []
    errors = 0
    for kind, tally in load.tallies.items():
        ordered = sorted(tally.latencies)
        everything += ordered
        errors += tally.errors
        if not ordered:
            print(f"{kind:<16}{0:>7}")
            continue
        cells = "".join(f"{percentile(ordered, share) * 1000:9.1f}" for share in (0.5, 0.9, 0.99))
        print(f"{kind:<16}{len(ordered):>7}{tally.errors:>8}{cells}{ordered[-1] * 1000:9.1f}")
    everything.sort()
    if everything:
        cells = "".join(f"{percentile(everything, share) * 1000:9.1f}" for share in (0.5, 0.9, 0.99))
        print(f"{'all':<16}{len(everything):>7}{errors:>8}{cells}{everything[-1] * 1000:9.1f}")
    print(f"throughput {len(everything) / elapsed:.1f} requests/s over {elapsed:.0f} s")
    for kind, tally in load.tallies.items():
        for example in tally.examples:
            print(f"  error in {kind}: {example}")


def resident_mb(pid: int) -> float | None:
    """VmRSS: resident memory now (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def role_of(pid: int, master: int) -> str:
    if pid == master:
        return "gunicorn master"
    try:
        command = command_of(pid)
    except OSError:
        return "gone"
    return "move receiver" if "receiver" in command else "worker"


def memory_snapshot(gateway: Gateway) -> dict[int, float | None]:
    assert gateway.process is not None
    return {pid: resident_mb(pid) for pid in process_tree(gateway.process.pid)}


def report_memory(gateway: Gateway, start: dict[int, float | None], end: dict[int, float | None]) -> None:
    assert gateway.process is not None
    master = gateway.process.pid
    print(f"\n{'process':<18}{'pid':>8}{'RSS start MB':>14}{'RSS end MB':>12}{'change':>9}{'peak MB':>9}")
    for pid in sorted(set(start) | set(end), key=lambda p: (role_of(p, master) != "gunicorn master", p)):
        before, after = start.get(pid), end.get(pid)
        change = f"{after - before:+9.1f}" if before is not None and after is not None else f"{'':>9}"
        try:
            peak = f"{peak_rss_mb(pid):9.1f}"
        except OSError:
            peak = f"{'-':>9}"
        shown_before = f"{before:14.1f}" if before is not None else f"{'(new)':>14}"
        shown_after = f"{after:12.1f}" if after is not None else f"{'(gone)':>12}"
        print(f"{role_of(pid, master):<18}{pid:>8}{shown_before}{shown_after}{change}{peak}")


def report_leftovers(gateway: Gateway) -> None:
    """After the load: pending moves in the spool, and what the gateway logged as errors."""
    root = spool_root(parse_config(gateway.config).server.dimse[0])
    pending = sorted(root.glob("*/*")) if root.exists() else []
    print(f"\npending move folders in the spool after the soak: {len(pending)}")
    lines = gateway.log_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    warnings = [line for line in lines if " WARNING " in line]
    print(f"gateway log: {len(lines)} lines, {len(errors)} ERROR/Traceback, {len(warnings)} WARNING ({gateway.log_path})")
    for line in (errors + warnings)[:5]:
        print(f"  {line[:200]}")


# ---------------------------------------------------------------------------------------------- main


def compare_with_slow_clients(args: argparse.Namespace, gateway: Gateway, content: Content) -> None:
    phase_seconds = args.minutes * 60 / 2
    results = {}
    for phase in ("alone", f"beside {args.slow_clients} slow clients"):
        stop = threading.Event()
        slow = start_slow_clients(gateway, content, args.slow_clients, stop) if phase != "alone" else []
        started = time.monotonic()
        load = Load(operations(gateway, content), started + phase_seconds, args.max_requests // 2)
        run_load(load, args.clients, started)
        stop.set()
        for thread in slow:
            thread.join(timeout=5)
        print(f"\nthe normal load, {phase}:")
        report_operations(load, time.monotonic() - started)
        results[phase] = p99(load)
    alone, beside = results.values()
    print(f"\np99 of the normal load: {alone * 1000:.1f} ms alone, {beside * 1000:.1f} ms beside the slow clients: "
          f"{beside / alone:.2f}x (target <= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=16, help="pool.size of the PACS (the default config's)")
    parser.add_argument("--studies", type=int, default=6)
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop after this many, deadline or not")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, Orthanc storage)")
    parser.add_argument("--slow-clients", type=int, default=0,
                        help="compare the load alone and beside this many slow hostile clients")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dicomrst-soak-"))
    orthanc = start_orthanc(work / "orthanc")
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "pool": {"size": args.pool_size}}])
    (work / "gateway").mkdir()
    gateway = Gateway(config, work / "gateway", workers=args.workers)
    try:
        content = load_content(orthanc, args.studies)
        orthanc.add_modality(*receiver_of(config))
        gateway.start()
        instances = sum(len(study) for study in content.studies)
        print(f"soak: {args.minutes:g} min, {args.clients} clients, {args.workers} gunicorn workers, pool.size "
              f"{args.pool_size}, {args.studies} studies ({instances} instances of 64x64) in Orthanc; "
              f"at most {args.max_requests} requests", flush=True)
        memory_at_start = memory_snapshot(gateway)
        if args.slow_clients:
            compare_with_slow_clients(args, gateway, content)
        else:
            started = time.monotonic()
            load = Load(operations(gateway, content), started + args.minutes * 60, args.max_requests)
            run_load(load, args.clients, started)
            report_operations(load, time.monotonic() - started)
        memory_at_end = memory_snapshot(gateway)
        report_memory(gateway, memory_at_start, memory_at_end)
        report_leftovers(gateway)
    finally:
        gateway.stop()
        orthanc.stop()
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
