"""How much a training job on the local platform costs over a bare `docker run`, for an image that does nothing.

The contract suite runs many short jobs, so the platform's fixed cost per job (config files, staging,
create/start/wait, logs, model.tar.gz upload, removal, cleanup) is what a user waits for. Target:
median(platform.run) / median(`docker run --rm IMAGE train`) <= 1.10 on the local engine (bind data
path), <= 1.20 on the engine data path (a non-local engine, or a non-root user on the local one).

    python benchmarks/overhead.py [--runs N]                       # local engine, pytest's data path
    python benchmarks/overhead.py --docker-host unix:///run/sm-remote-engine/docker.sock   # non-local
    runuser -u USER -- VENV/bin/python benchmarks/overhead.py      # non-root: the engine data path

Both sides of every ratio run on the same engine: the image is built here and, for another engine,
copied there first (`docker save | docker load`); `cli` is `docker -H URL run`.

Variants run interleaved, one of each per round, so machine noise hits them alike:

* ``platform``       TrainingPlatform.run(spec): one host, no channels
* ``platform+chan``  the same with one File channel of 10 small objects (seeded in moto once)
* ``cli``            ``docker run --rm IMAGE train`` via subprocess (the reference)
* ``docker-py``      ``client.containers.run(IMAGE, "train", remove=True)``, for reference
* ``platform:true`` / ``cli:true``  the same two with ``true`` as the command: training that writes nothing
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "examples")]

import build  # noqa: E402
import docker  # noqa: E402
import docker.types  # noqa: E402

from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform  # noqa: E402
from pytest_sagemaker_contract.platform.data_path import DATA_PATHS, choose_data_path, detect_topology  # noqa: E402
from pytest_sagemaker_contract.platform.engine import LABEL, LABEL_RUN  # noqa: E402
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request  # noqa: E402

IMAGE_DIR = Path(__file__).resolve().parent / "images" / "noop"
BUCKET = "sm-bench"
CHANNEL_OBJECTS = 10
TARGET_RATIO = {"bind": 1.10, "engine": 1.20}


@dataclass
class PlatformSample:
    """One platform job: wall time plus where it went (timeline is epoch seconds, like `docker events`)."""

    total: float
    start_call: float
    wait_call: float
    t0: float
    t_end: float
    timeline: Any

    def phases(self) -> dict[str, float]:
        tl = self.timeline
        return {
            "prepare+create (dirs, config, inspect, create, staging)": tl.created - self.t0,
            "start (docker start, log follower)": tl.started - tl.created,
            "container run, as seen by the supervisor's wait": tl.exited - tl.started,
            "export (logs join, inspect, pack+upload, remove, rmtree)": tl.finished - tl.exited,
            "hand-off to the caller (done event)": self.t_end - tl.finished,
        }


@dataclass
class Series:
    name: str
    seconds: list[float] = field(default_factory=list)
    samples: list[PlatformSample] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.seconds)

    def p90(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def request(name: str, image: str, channel_uri: str | None = None, command: str | None = None) -> TrainingJobSpec:
    """The smallest valid CreateTrainingJob request: one host, no channels unless asked."""
    algo: dict[str, Any] = {"TrainingImage": image, "TrainingInputMode": "File"}
    if command is not None:
        algo["ContainerArguments"] = [command]
    req: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerBenchRole",
        "AlgorithmSpecification": algo,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    if channel_uri is not None:
        req["InputDataConfig"] = [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel_uri}},
            }
        ]
    return parse_request(req)


def run_platform(platform: TrainingPlatform, spec: TrainingJobSpec) -> PlatformSample:
    """platform.run(spec), split into start() and wait() so the breakdown can tell them apart."""
    t0 = time.time()
    p0 = time.perf_counter()
    job = platform.start(spec)
    p1 = time.perf_counter()
    result = job.wait(timeout=120)
    p2 = time.perf_counter()
    t_end = time.time()
    if not result.completed:
        raise RuntimeError(f"{spec.name}: {result.TrainingJobStatus} {result.FailureReason}\n{result.log_tail()}")
    return PlatformSample(p2 - p0, p1 - p0, p2 - p1, t0, t_end, result.timeline)


def archive_floor(client: docker.DockerClient, image: str, labels: dict[str, str]) -> None:
    """What any tool pays to run a job where the engine shares no filesystem: `docker run` plus one archive in
    (the config) and the model and output directories out, over the same volumes, with nothing else."""
    api = client.api
    mounts = [
        docker.types.Mount(t, None, type="volume", no_copy=True)
        for t in ("/opt/ml/input", "/opt/ml/model", "/opt/ml/output")
    ]
    container = api.create_container(
        image, command=["train"], labels=labels, host_config=api.create_host_config(mounts=mounts)
    )["Id"]
    try:
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            for name in ("opt/ml/input", "opt/ml/input/config", "opt/ml/model", "opt/ml/output"):
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o777
                archive.addfile(info)
        api.put_archive(container, "/", tar.getvalue())
        api.start(container)
        api.wait(container)
        with ThreadPoolExecutor(2) as pool:
            list(
                pool.map(
                    lambda path: b"".join(api.get_archive(container, path)[0]), ("/opt/ml/model", "/opt/ml/output")
                )
            )
    finally:
        api.remove_container(container, v=True, force=True)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each variant (default 20)")
    parser.add_argument("--docker-host", help="the engine to measure on (default: DOCKER_HOST or the local one)")
    parser.add_argument("--data-path", choices=DATA_PATHS, default="auto", help="as --sm-data-path (default auto)")
    args = parser.parse_args()
    runs: int = args.runs
    run_id = f"bench-{uuid.uuid4().hex[:6]}"
    labels = {LABEL: "1", LABEL_RUN: run_id}
    label_args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
    if args.docker_host:
        os.environ["DOCKER_HOST"] = args.docker_host  # the platform's Engine, the clients and `docker` alike

    setup: dict[str, float] = {}
    started = time.perf_counter()
    engine = Engine()
    setup["engine connect (docker.from_env + ping)"] = time.perf_counter() - started
    client = docker.from_env()  # its own connection pool, as a test's own client would have
    server_version = str(client.version().get("Version", "?"))
    s3 = S3Server()
    setup["moto server start"] = timed(s3.start)
    workdir = Path(tempfile.mkdtemp(prefix="sm-bench-"))
    image = ""

    def build_and_inspect() -> None:
        nonlocal image
        image = build.build(client, IMAGE_DIR)
        engine.image(image)

    setup["image build (cached by context hash) + inspect"] = timed(build_and_inspect)
    topology = detect_topology(engine, run_id, [image])
    data_path = choose_data_path(args.data_path, topology)
    where = topology.header(data_path, args.data_path != "auto", None)
    platform = TrainingPlatform(engine, s3, workdir, run_id=run_id, data_path=data_path)
    try:
        channel_uri = f"s3://{BUCKET}/channels/train"

        def seed() -> None:
            s3.ensure_bucket(BUCKET)
            for i in range(CHANNEL_OBJECTS):
                s3.client().put_object(Bucket=BUCKET, Key=f"channels/train/part-{i:02d}.csv", Body=b"1,2,3\n" * 10)

        setup[f"seed channel ({CHANNEL_OBJECTS} objects)"] = timed(seed)

        specs = {
            "platform": request("bench-noop", image),
            "platform+chan": request("bench-noop-chan", image, channel_uri=channel_uri),
            "platform:true": request("bench-true", image, command="true"),
        }
        cli = ["docker", "run", "--rm", *label_args, image]
        variants: dict[str, Callable[[], object]] = {
            "platform": lambda: run_platform(platform, specs["platform"]),
            "platform+chan": lambda: run_platform(platform, specs["platform+chan"]),
            "cli": lambda: subprocess.run([*cli, "train"], check=True, capture_output=True),
            "docker-py": lambda: client.containers.run(image, "train", remove=True, labels=labels),
            "platform:true": lambda: run_platform(platform, specs["platform:true"]),
            "cli:true": lambda: subprocess.run([*cli, "true"], check=True, capture_output=True),
        }
        if data_path == "engine":
            variants["api+archive"] = lambda: archive_floor(client, image, labels)
        for name, fn in variants.items():
            setup[f"warm-up run: {name}"] = timed(fn)

        series = {name: Series(name) for name in variants}
        bench_started = time.perf_counter()
        for _ in range(runs):
            for name, fn in variants.items():
                t = time.perf_counter()
                out = fn()
                elapsed = time.perf_counter() - t
                series[name].seconds.append(elapsed)
                if isinstance(out, PlatformSample):
                    series[name].samples.append(out)
        bench_seconds = time.perf_counter() - bench_started
    finally:
        cleanup_started = time.perf_counter()
        swept = platform.close()
        s3.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        left = client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        client.close()
        engine.client.close()
        cleanup_seconds = time.perf_counter() - cleanup_started

    print(f"image: {image} — `train` is /bin/sh writing /opt/ml/model/model.txt (5 bytes), exit 0;")
    print("       `true` variants run busybox `true` instead: no shell, no file (an empty model.tar.gz)")
    print(f"engine: dockerd {server_version}, {os.cpu_count()} CPUs; pytest user uid {os.geteuid()}")
    print(where.removeprefix("sagemaker-contract: "))
    print("\nsetup (once, ms)")
    for what, seconds in setup.items():
        print(f"  {fmt_ms(seconds)}  {what}")

    print(f"\n{runs} runs each, interleaved, {bench_seconds:.1f} s in all (ms)")
    print(f"  {'variant':<15} {'median':>8} {'p90':>8} {'min':>8}")
    for s in series.values():
        print(f"  {s.name:<15} {fmt_ms(s.median()):>8} {fmt_ms(s.p90()):>8} {fmt_ms(min(s.seconds)):>8}")

    base_cli = series["cli"].median()
    base_py = series["docker-py"].median()
    print("\nratios of medians")
    for name in ("platform", "platform+chan"):
        m = series[name].median()
        print(f"  {name:<15} / cli {m / base_cli:5.2f}    / docker-py {m / base_py:5.2f}")
    print(f"  {'platform:true':<15} / cli:true {series['platform:true'].median() / series['cli:true'].median():5.2f}")
    if "api+archive" in series:
        floor = series["api+archive"].median()
        print(
            f"  {'platform':<15} / api+archive {series['platform'].median() / floor:5.2f}    "
            f"(api+archive / cli {floor / base_cli:5.2f}: the archive calls alone, with nothing of the platform)"
        )

    ratio = series["platform"].median() / base_cli
    target = TARGET_RATIO[data_path]
    verdict = "MEETS" if ratio <= target else "MISSES"
    print(
        f"\nverdict ({data_path} data path): platform {verdict} the target: median(platform)/median(cli) = "
        f"{ratio:.2f} (target <= {target:.2f}; {(series['platform'].median() - base_cli) * 1000:+.0f} ms per job)"
    )

    for name in ("platform", "platform+chan"):
        s = series[name]
        median_sample = sorted(s.samples, key=lambda x: x.total)[len(s.samples) // 2]
        per_phase = {k: statistics.median(x.phases()[k] for x in s.samples) for k in median_sample.phases()}
        print(f"\nwhere {name}'s time goes (ms): median run ({fmt_ms(median_sample.total).strip()}) | per-phase median")
        for phase, seconds in median_sample.phases().items():
            print(f"  {fmt_ms(seconds)} | {fmt_ms(per_phase[phase])}  {phase}")
        print(
            f"  start() {fmt_ms(median_sample.start_call).strip()}, wait() {fmt_ms(median_sample.wait_call).strip()}"
            f"; cli median for the whole job: {fmt_ms(base_cli).strip()}"
        )

    print(
        f"\ncleanup: {cleanup_seconds * 1000:.0f} ms; platform.close() swept {swept}; "
        f"containers left with {LABEL_RUN}={run_id}: {len(left)}; moto stopped; {workdir} removed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
