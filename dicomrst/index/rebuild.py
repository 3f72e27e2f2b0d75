"""``dicomrst index AET``: the bucket listed, the header of each object not yet indexed read with ranged
GETs (several at once), and its row written. What is already indexed with the same ETag (or, for an
instance stored through the gateway, the same size) is left as it is, so an interrupted run resumes
where it stopped; objects that are not DICOM are recorded as skipped and not read again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from dicomrst.index.headers import NotAnInstance, read_object_header
from dicomrst.index.instance_index import InstanceIndex, PreparedInstance

log = logging.getLogger(__name__)

# Instances written per transaction: a commit per instance held the writing thread back.
BATCH = 200


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str | None
    size: int


@dataclass
class Summary:
    listed: int = 0
    indexed: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.indexed / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.listed} objects listed and read in {self.seconds:.1f} s",
                 f"indexed {self.indexed} ({rate:.0f}/s), unchanged {self.unchanged}, "
                 f"skipped {self.skipped} (not DICOM), failed {self.failed}, removed {self.removed} (gone from the bucket)"]
        lines += [f"  failed: {failure}" for failure in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more")
        return lines


def listed_objects(client: Any, bucket: str) -> Iterator[ListedObject]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            yield ListedObject(entry["Key"], entry.get("ETag"), int(entry.get("Size", 0)))


def _unchanged(listed: ListedObject, known: tuple[str | None, int | None] | None) -> bool:
    if known is None:
        return False
    etag, size = known
    # The gateway's STOW records no ETag (a multipart upload's is not the content's); the size then.
    return etag == listed.etag if etag is not None else size == listed.size


def _prepared(client: Any, bucket: str, listed: ListedObject, index: InstanceIndex) -> PreparedInstance:
    """Read in a thread of the pool: the ranged GETs, the header's parse and its rows."""
    def read_range(start: int, end: int) -> bytes:
        response = client.get_object(Bucket=bucket, Key=listed.key, Range=f"bytes={start}-{end - 1}")
        data: bytes = response["Body"].read()
        return data

    # Only the header: no metadata document is kept, which would take a whole read and cost a third
    # of the indexing rate (its objects' metadata is read from the bucket when asked).
    return index.prepared(read_object_header(read_range, listed.size), listed.key, listed.size, listed.etag)


def rebuild(client: Any, bucket: str, index: InstanceIndex, concurrency: int = 16,
            progress: bool = True) -> Summary:
    summary = Summary()
    started = time.monotonic()
    known = index.known()
    seen: set[str] = set()
    bar = tqdm(desc=f"indexing {bucket}", unit=" objects", disable=not progress)

    batch: list[PreparedInstance] = []

    def write() -> None:
        index.add_all(batch)
        summary.indexed += len(batch)
        batch.clear()

    def finish(future: Future[PreparedInstance], listed: ListedObject) -> None:
        try:
            prepared = future.result()
        except NotAnInstance as error:
            index.skip(listed.key, listed.etag, str(error))
            summary.skipped += 1
        except (BotoCoreError, ClientError, OSError) as error:
            summary.failed += 1
            summary.failures.append(f"{listed.key}: {error}")
        except Exception as error:  # one bad object must not end the run; it is reported
            log.exception("indexing %s failed", listed.key)
            summary.failed += 1
            summary.failures.append(f"{listed.key}: {type(error).__name__}: {error}")
        else:
            # Outside the try: an index that cannot be written ends the run (the command says so).
            batch.append(prepared)
            if len(batch) >= BATCH:
                write()
        bar.update(1)

    in_flight: dict[Future[PreparedInstance], ListedObject] = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for listed in listed_objects(client, bucket):
            summary.listed += 1
            seen.add(listed.key)
            if _unchanged(listed, known.get(listed.key)):
                summary.unchanged += 1
                bar.update(1)
                continue
            in_flight[pool.submit(_prepared, client, bucket, listed, index)] = listed
            if len(in_flight) >= 2 * concurrency:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(future, in_flight.pop(future))
        for future in list(in_flight):
            finish(future, in_flight.pop(future))
    write()
    for key in known.keys() - seen:
        index.remove(key)
        summary.removed += 1
    bar.close()
    summary.seconds = time.monotonic() - started
    return summary
