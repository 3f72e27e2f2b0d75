"""S3: a series of 100 instances of 512x512 16-bit through the gateway next to the floor, boto3
GetObject of the same keys with the same concurrency into memory, against moto's S3 server.

    python bench/s3.py [--instances 100] [--concurrency 32] [--repeats 5] [--workers 2]
"""
from __future__ import annotations

import argparse
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import requests

from common import Gateway, gateway_config, report, timed_in_turn
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import MotoS3

BUCKET = "bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomrst-bench-"))
    moto = MotoS3(work)
    moto.start()
    config = gateway_config([{"aet": "BENCH", "backend": "S3", "endpoint": moto.endpoint, "endpoint-style": "path",
                              "bucket": BUCKET, "concurrency": args.concurrency,
                              "credentials": {"access-key": "testing", "secret-key": "testing"}}])
    gateway = Gateway(config, work, workers=args.workers)
    try:
        client = moto.client()
        client.create_bucket(Bucket=BUCKET)
        series = generate_study(random.Random(3), n_series=1, instances_per_series=args.instances, rows=512, columns=512)
        keys = []
        for dataset in series:
            buffer = BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            key = f"{dataset.StudyInstanceUID}/{dataset.SeriesInstanceUID}/{dataset.SOPInstanceUID}.dcm"
            client.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
            keys.append(key)
        gateway.start()
        url = f"{gateway.url}/aets/BENCH/studies/{series[0].StudyInstanceUID}/series/{series[0].SeriesInstanceUID}"

        def through_gateway() -> None:
            with requests.get(url, stream=True, timeout=300) as response:
                response.raise_for_status()
                size = sum(len(chunk) for chunk in response.iter_content(chunk_size=1 << 20))
            assert size > args.instances * 512 * 512 * 2

        def floor() -> None:
            with ThreadPoolExecutor(args.concurrency) as pool:
                bodies = list(pool.map(lambda key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read(), keys))
            assert len(bodies) == args.instances

        # In turn on every round: moto's server slows down as it runs, which would fall on one side only.
        gateway_times, floor_times = timed_in_turn([through_gateway, floor], args.repeats)
        report(f"S3 WADO-RS series of {args.instances} instances of 512x512x16 bit, concurrency {args.concurrency}, "
               f"{args.workers} gunicorn workers", gateway_times, floor_times, target=1.1)
    finally:
        gateway.stop()
        moto.stop()


if __name__ == "__main__":
    main()
