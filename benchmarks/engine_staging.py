"""Staging a local channel onto an engine that shares no filesystem with pytest, against `docker cp`.

On such an engine (a remote DOCKER_HOST, GitLab's docker:dind, `.ci/remote-engine`) every byte of
/opt/ml/input crosses the Docker API. Target: the platform gets a 1 GiB local File channel into a
started container at >= 0.5x the throughput of `docker cp` of the same directory into a created
container of the same image (both then start it).

    python benchmarks/engine_staging.py --docker-host unix:///run/sm-remote-engine/docker.sock [--size-mib 1024]

Variants run interleaved, one of each per round, after an untimed warm-up round:

* ``platform``   TrainingPlatform.start(spec, local_channels={"train": DIR}) on the engine data path,
                 timed until CreateTrainingJob returns (the container has started with the data in place)
* ``docker cp``  ``docker create`` with the same volumes, ``docker cp DIR/.. CID:/opt/ml/input``,
                 ``docker start``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "examples")]

import build  # noqa: E402
import docker  # noqa: E402

from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform  # noqa: E402
from pytest_sagemaker_contract.platform.engine import LABEL, LABEL_RUN  # noqa: E402
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request  # noqa: E402

IMAGE_DIR = Path(__file__).resolve().parent / "images" / "noop"
MiB = 1 << 20
TARGET_RATIO = 0.5
FILES = 16


def request(name: str, image: str) -> TrainingJobSpec:
    req: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerBenchRole",
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://sm-bench/train"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://sm-bench/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    return parse_request(req)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker-host", help="the engine (default: DOCKER_HOST or the local one)")
    parser.add_argument("--size-mib", type=int, default=1024, help="channel size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (default 3)")
    args = parser.parse_args()
    if args.docker_host:
        os.environ["DOCKER_HOST"] = args.docker_host
    run_id = f"bench-{uuid.uuid4().hex[:6]}"
    labels = {LABEL: "1", LABEL_RUN: run_id}
    client = docker.from_env(timeout=600)
    image = build.build(client, IMAGE_DIR)
    scratch = Path(tempfile.mkdtemp(prefix="sm-bench-channel-"))
    source = scratch / "data" / "train"  # `docker cp scratch/data CID:/opt/ml/input` lands it where the platform does
    source.mkdir(parents=True)
    per_file = args.size_mib * MiB // FILES
    for i in range(FILES):
        with open(source / f"part-{i:02d}.bin", "wb") as out:
            for _ in range(per_file // MiB):
                out.write(os.urandom(MiB))
    size = sum(p.stat().st_size for p in source.iterdir())
    s3 = S3Server().start()
    workdir = Path(tempfile.mkdtemp(prefix="sm-bench-"))
    platform = TrainingPlatform(Engine(client), s3, workdir, run_id=run_id, data_path="engine")
    volumes = [arg for t in ("/opt/ml/input", "/opt/ml/model", "/opt/ml/output") for arg in ("-v", t)]
    label_args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]

    def platform_start() -> float:
        started = time.perf_counter()
        job = platform.start(request(f"bench-stage-{uuid.uuid4().hex[:4]}", image), local_channels={"train": source})
        elapsed = time.perf_counter() - started
        result = job.wait(300)
        if not result.completed:
            raise RuntimeError(f"{result.FailureReason}\n{result.log_tail()}")
        return elapsed

    def docker_cp() -> float:
        started = time.perf_counter()
        cid = subprocess.run(
            ["docker", "create", *label_args, *volumes, image, "true"], check=True, capture_output=True, text=True
        ).stdout.strip()
        try:
            subprocess.run(["docker", "cp", str(source.parent), f"{cid}:/opt/ml/input"], check=True)
            subprocess.run(["docker", "start", cid], check=True, capture_output=True)
            elapsed = time.perf_counter() - started
            subprocess.run(["docker", "wait", cid], check=True, capture_output=True)
        finally:
            subprocess.run(["docker", "rm", "-v", "-f", cid], capture_output=True)
        return elapsed

    variants = {"platform": platform_start, "docker cp": docker_cp}
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for fn in variants.values():
            fn()  # warm-up: page cache, image layers
        for _ in range(args.runs):
            for name, fn in variants.items():
                times[name].append(fn())
    finally:
        platform.close()
        s3.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        left = client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        client.close()

    engine_url = os.environ.get("DOCKER_HOST", "local")
    print(f"engine {engine_url}; channel {size / MiB:.0f} MiB in {FILES} files; {args.runs} interleaved rounds")
    print(f"  {'variant':<10} {'median s':>9} {'MiB/s':>8}   runs")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  {name:<10} {median:9.2f} {size / MiB / median:8.0f}   {', '.join(f'{s:.2f}' for s in seconds)}")
    ratio = statistics.median(times["docker cp"]) / statistics.median(times["platform"])
    verdict = "MEETS" if ratio >= TARGET_RATIO else "MISSES"
    print(f"verdict: platform {verdict} the target: throughput {ratio:.2f}x docker cp's (target >= {TARGET_RATIO})")
    print(f"containers left with {LABEL_RUN}={run_id}: {len(left)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
