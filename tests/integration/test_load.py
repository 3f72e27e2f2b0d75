"""The gateway under concurrent load (gunicorn, 4 gevent workers, ORTHANC's pool.size 4): every answer
complete and exact, a hung PACS starving nobody, and nothing held once the load is over.

Expected answers come from ``known_data``. Other modules of the session may have stored studies of their
own (STOW-RS tests run against the same Orthanc), so the few queries that could match those widen the
expectation by what Orthanc's own index says it holds beyond ``known_data``; run alone, or in file order,
that is nothing and the expectation is exactly ``known_data``.
"""
from __future__ import annotations

import concurrent.futures
import fcntl
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

import requests
from pydicom import Dataset, dcmread

from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.backends.dimse.spool import spool_root
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.config import parse_config
from tests.integration.conftest import HUNG_TIMEOUT_MS, KnownData
from tests.integration.dicom_json import value
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, SilentPacs

REQUEST_TIMEOUT = 60
QIDO_REQUESTS, QIDO_CLIENTS = 400, 32
WADO_REQUESTS, WADO_CLIENTS = 100, 24
ALL_SYNTAXES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# How long the gateway may take to put things back after the last response byte left (a worker removes
# its move folder and releases its association just after the close delimiter is sent).
SETTLE_SECONDS = 10

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Query:
    """One QIDO-RS request and the UIDs (of ``keyword``) its answer must hold, each exactly once."""

    path: str
    params: tuple[tuple[str, str], ...]
    keyword: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Retrieval:
    """One WADO-RS request and the instances its answer must hold, each exactly once."""

    path: str
    accept: str | None
    originals: tuple[Dataset, ...]


def url_of(gateway: Gateway, path: str, aet: str = "ORTHANC") -> str:
    return f"{gateway.url}/aets/{aet}{path}"


def run_all(work: Callable[[T], R], items: Sequence[T], clients: int) -> list[tuple[T, R | BaseException]]:
    """Every item's result or exception: one failure must not hide the others."""
    def attempt(item: T) -> R | BaseException:
        try:
            return work(item)
        except Exception as error:
            return error

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return list(zip(items, pool.map(attempt, items)))


def failures_of(results: Iterable[tuple[Any, Any]]) -> list[str]:
    return [f"{item}: {type(outcome).__name__}: {outcome}" for item, outcome in results
            if isinstance(outcome, BaseException)]


def assert_no_failures(results: Sequence[tuple[Any, Any]]) -> None:
    failures = failures_of(results)
    shown = "\n".join(failures[:10])
    assert not failures, f"{len(failures)} of {len(results)} requests failed, first ones:\n{shown}"


# ---------------------------------------------------------------------------------------- expectations


def foreign_studies(orthanc: Orthanc, known_data: KnownData) -> dict[str, str]:
    """Study UID -> PatientID of what Orthanc holds beyond known_data (stored by other modules)."""
    response = requests.get(f"{orthanc.url}/studies", params={"expand": ""}, timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    held = {study["MainDicomTags"]["StudyInstanceUID"]: study["PatientMainDicomTags"].get("PatientID", "")
            for study in response.json()}
    return {uid: patient for uid, patient in held.items() if uid not in known_data.study_uids}


def qido_queries(known_data: KnownData, foreign: dict[str, str]) -> list[Query]:
    queries = [Query("/studies", (), "StudyInstanceUID", tuple(sorted(known_data.study_uids | set(foreign))))]
    for patient_id in sorted({study[0].PatientID for study in known_data.studies}):
        expected = {study[0].StudyInstanceUID for study in known_data.studies if study[0].PatientID == patient_id}
        expected |= {uid for uid, patient in foreign.items() if patient == patient_id}
        queries.append(Query("/studies", (("PatientID", patient_id),), "StudyInstanceUID", tuple(sorted(expected))))
    for study in known_data.studies:
        study_uid = study[0].StudyInstanceUID
        series_uids = sorted({dataset.SeriesInstanceUID for dataset in study})
        queries.append(Query(f"/studies/{study_uid}/series", (), "SeriesInstanceUID", tuple(series_uids)))
        for series_uid in series_uids:
            sop_uids = sorted(d.SOPInstanceUID for d in study if d.SeriesInstanceUID == series_uid)
            queries.append(Query(f"/studies/{study_uid}/series/{series_uid}/instances", (), "SOPInstanceUID",
                                 tuple(sop_uids)))
    return queries


def retrievals(known_data: KnownData) -> list[Retrieval]:
    """Study, series and instance level of every generated study, as Explicit VR LE and as stored."""
    found: list[Retrieval] = []
    for number, study in enumerate(known_data.studies):
        accept = ALL_SYNTAXES if number % 2 else None
        study_uid = study[0].StudyInstanceUID
        found.append(Retrieval(f"/studies/{study_uid}", accept, tuple(study)))
        for series_uid in sorted({d.SeriesInstanceUID for d in study}):
            series = tuple(d for d in study if d.SeriesInstanceUID == series_uid)
            found.append(Retrieval(f"/studies/{study_uid}/series/{series_uid}", accept, series))
            first = series[0]
            found.append(Retrieval(f"/studies/{study_uid}/series/{series_uid}/instances/{first.SOPInstanceUID}",
                                   accept, (first,)))
    return found


# ------------------------------------------------------------------------------------------ one request


def check_query(gateway: Gateway, query: Query) -> float:
    started = time.monotonic()
    response = requests.get(url_of(gateway, query.path), params=query.params, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
    assert response.headers["Content-Type"].startswith("application/dicom+json"), response.headers["Content-Type"]
    received = sorted(value(match, query.keyword) for match in response.json())
    assert received == list(query.expected), f"got {received}, expected {list(query.expected)}"
    return time.monotonic() - started


def check_retrieval(gateway: Gateway, retrieval: Retrieval) -> None:
    headers = {"Accept": retrieval.accept} if retrieval.accept else {}
    response = requests.get(url_of(gateway, retrieval.path), headers=headers, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
    # parse_multipart raises on a body without its close delimiter: a move that broke off part-way.
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    datasets = [dcmread(BytesIO(body)) for _, body in parts]
    originals = {str(d.SOPInstanceUID): d for d in retrieval.originals}
    received = sorted(str(d.SOPInstanceUID) for d in datasets)
    assert received == sorted(originals), f"got {received}, expected {sorted(originals)}"
    for dataset in datasets:
        assert dataset.PixelData == originals[str(dataset.SOPInstanceUID)].PixelData, dataset.SOPInstanceUID


# ------------------------------------------------------------------------------------------ the load


def test_concurrent_qido_answers_are_exact(gateway: Gateway, orthanc: Orthanc, known_data: KnownData):
    queries = qido_queries(known_data, foreign_studies(orthanc, known_data))
    rng = random.Random(400)
    load = [rng.choice(queries) for _ in range(QIDO_REQUESTS - len(queries))] + queries  # each at least once
    rng.shuffle(load)
    results = run_all(partial(check_query, gateway), load, QIDO_CLIENTS)
    assert_no_failures(results)


def test_concurrent_wado_retrievals_are_complete_and_exact(gateway: Gateway, known_data: KnownData):
    kinds = retrievals(known_data)
    rng = random.Random(100)
    load = [rng.choice(kinds) for _ in range(WADO_REQUESTS - len(kinds))] + kinds
    rng.shuffle(load)
    results = run_all(partial(check_retrieval, gateway), load, WADO_CLIENTS)
    assert_no_failures(results)


def test_a_hung_pacs_starves_nobody(gateway: Gateway, known_data: KnownData, silent_pacs: SilentPacs):
    """While a C-FIND to HUNG waits out its qido-rs.timeout, ORTHANC keeps answering, at full pool."""
    muller = Query("/studies", (("PatientID", "PID-1001"),), "StudyInstanceUID",
                       (known_data.study(0)[0].StudyInstanceUID,))
    with concurrent.futures.ThreadPoolExecutor(17) as pool:
        started = time.monotonic()
        hung = pool.submit(requests.get, url_of(gateway, "/studies", aet="HUNG"), timeout=REQUEST_TIMEOUT)
        time.sleep(0.2)  # let the hung query take HUNG's only association first
        assert not hung.done()
        # The probes of the last test see what is held while it is: HUNG's one slot and its connection.
        assert held_slots(gateway, "HUNG") == [0]
        assert established_connections_to(silent_pacs.port) >= 1
        healthy = [pool.submit(check_query, gateway, muller) for _ in range(16)]
        durations = [future.result() for future in healthy]  # raises on a wrong answer
        healthy_done = time.monotonic() - started
        hung_response = hung.result()
        hung_done = time.monotonic() - started
    assert hung_response.status_code == 504 and "did not answer" in hung_response.json()["error"], hung_response.text
    # "Fast" with a wide margin: all sixteen were answered while the hung query was still waiting.
    assert healthy_done < hung_done and healthy_done < HUNG_TIMEOUT_MS / 1000, (healthy_done, hung_done, durations)
    assert hung_done < HUNG_TIMEOUT_MS / 1000 + 5


# ----------------------------------------------------------------------------- nothing left behind


def pending_moves(gateway: Gateway) -> list[Path]:
    """What lies under each PACS folder of the receiver's spool: pending moves ({pacs}/{message id})."""
    receiver = parse_config(gateway.config).server.dimse[0]
    root = spool_root(receiver)
    return sorted(path for path in root.glob("*/*")) if root.exists() else []


def held_slots(gateway: Gateway, aet: str) -> list[int]:
    """The association slots of ``aet`` some process holds now; taking each lock for a moment tells."""
    entry = parse_config(gateway.config).aet(aet)
    assert isinstance(entry, DimseAetConfig)
    directory = default_slot_directory(entry.aet, entry.host, entry.port)
    held = []
    for slot in range(entry.pool.size):
        path = directory / f"{slot}.lock"
        if not path.exists():
            continue
        descriptor = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(slot)
        finally:
            os.close(descriptor)  # closing drops our lock at once
    return held


def established_connections_to(port: int) -> int:
    """TCP connections in state ESTABLISHED whose remote end is 127.0.0.1:port (a client's sockets)."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and remote == f"0100007F:{port:04X}":
                count += 1
    return count


def settled(check: Callable[[], object], timeout: float = SETTLE_SECONDS) -> object:
    """The first falsy value ``check`` gives within ``timeout``, else its last one."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if not outcome or time.monotonic() >= deadline:
            return outcome
        time.sleep(0.1)


def test_nothing_is_left_open_after_the_load(gateway: Gateway, orthanc: Orthanc, silent_pacs: SilentPacs,
                                             known_data: KnownData):
    """Runs after the load above (file order): no pending move, no association held or connected."""
    assert settled(lambda: pending_moves(gateway)) == []
    assert settled(lambda: held_slots(gateway, "ORTHANC")) == []
    assert settled(lambda: held_slots(gateway, "HUNG")) == []
    assert settled(lambda: established_connections_to(orthanc.dicom_port)) == 0
    assert settled(lambda: established_connections_to(silent_pacs.port)) == 0

    # And the pool really works at full size: a burst four times ORTHANC's pool.size, each waiting for a
    # slot, is answered in full, which only happens if every slot the load took was given back.
    study = known_data.study(2)
    query = Query(f"/studies/{study[0].StudyInstanceUID}/series", (), "SeriesInstanceUID",
                  tuple(sorted({d.SeriesInstanceUID for d in study})))
    results = run_all(partial(check_query, gateway), [query] * 16, 16)
    assert_no_failures(results)
    retrieval = Retrieval(f"/studies/{study[0].StudyInstanceUID}", None, tuple(study))
    assert_no_failures(run_all(partial(check_retrieval, gateway), [retrieval] * 8, 8))
    assert settled(lambda: pending_moves(gateway)) == []
