"""How fast a channel reaches the container-visible directory, and at what memory cost, against `cp -r`.

Staging must stream (never a whole object in memory on our side). Targets, all against ``cp -r`` of the
same data on the same disk: S3 staging (moto -> host dir) >= 0.5x cp's throughput with the staging
process's peak RSS <= 300 MB; a local directory standing in for a FullyReplicated File/FastFile channel
>= 10x faster than cp.

    python benchmarks/staging.py [--size-mib 1024] [--runs 3] [--objects 1000]

moto runs in this process (ThreadedMotoServer, as S3Server does). Over HTTP, moto reads a whole object
into memory on every GET (and concatenates the parts on multipart completion), so this process's RSS is
moto's, not staging's: the ``over HTTP, child`` rows stage in a child process that reaches moto over HTTP
only, and report that child's own VmHWM. The ``moto's process`` rows stage from this process, as the
platform does inside the pytest process: S3Server.download then copies bytes straight out of moto's store
(no GET), and the RSS that counts is this whole process's growth. Moto's cost is this process's VmHWM
growth per operation (VmHWM reset through /proc/self/clear_refs before each).

Variants run interleaved, one of each per round, after an untimed warm-up round; destinations are
removed and dirty pages synced (untimed) between runs. Source data is in the page cache for every variant, cp included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "examples")]

from pytest_sagemaker_contract.platform import S3Server  # noqa: E402
from pytest_sagemaker_contract.platform.channels import describe_local, stage_channel  # noqa: E402
from pytest_sagemaker_contract.platform.data_path import overlay_mount  # noqa: E402
from pytest_sagemaker_contract.platform.layout import HostLayout  # noqa: E402
from pytest_sagemaker_contract.platform.s3 import REGION  # noqa: E402
from pytest_sagemaker_contract.platform.s3_gate import SessionKeys  # noqa: E402
from pytest_sagemaker_contract.spec import ChannelSpec  # noqa: E402

MiB = 1 << 20
BUCKET = "sm-staging-bench"
ROLE = "arn:aws:iam::123456789012:role/SageMakerBenchRole"
S3_MIN_RATIO = 0.5
RSS_LIMIT = 300_000_000
LOCAL_MIN_RATIO = 10.0


# -- memory -------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def reset_peak() -> int:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); returns that RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_kib("VmRSS")


def peak_growth_kib(before_kib: int) -> int:
    return max(0, _status_kib("VmHWM") - before_kib)


# -- child processes ----------------------------------------------------------------------------


def child_main(task: dict[str, Any]) -> None:
    """One measured operation in a fresh process that reaches moto over HTTP only; prints its seconds as JSON."""
    s3 = S3Server()
    s3.endpoint_url = task.get("endpoint", "")
    if "keys" in task:  # the parent's S3 answers only its own session key
        s3.keys = SessionKeys(*task["keys"])
    if s3.endpoint_url:
        s3.client().head_bucket(Bucket=BUCKET)  # the session's client exists already on the platform
    kind = task["kind"]
    started = time.perf_counter()
    if kind == "stage":
        channel = ChannelSpec(name="train", s3_uri=task["uri"])
        stage_channel(s3, channel, Path(task["dest"]), host_index=0, host_count=1, role_arn=ROLE, region=REGION)
    elif kind == "local":  # what the platform does for a local File-mode directory: describe it, prepare the overlay
        describe_local(ChannelSpec(name="train", s3_uri=task["uri"]), Path(task["source"]))
        overlay_mount(Path(task["source"]), Path(task["dest"]), "/opt/ml/input/data/train")
    elif kind == "upload":
        s3.upload_path(Path(task["source"]), task["uri"])
    elif kind != "floor":
        raise ValueError(kind)
    print(json.dumps({"seconds": time.perf_counter() - started, "vmhwm_kib": _status_kib("VmHWM")}))


#: The parent S3's session keys, handed to each child (set in main()).
_KEYS: list[str] = []


def run_child(task: dict[str, Any]) -> tuple[float, int]:
    """(seconds measured inside the child, the child's own VmHWM in bytes): interpreter start-up is not timed.

    Not wait4()'s ru_maxrss: Linux carries the forking parent's RSS (moto's) into the child's ru_maxrss.
    """
    task = {**task, "keys": _KEYS}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], check=True, capture_output=True)
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return float(report["seconds"]), int(report["vmhwm_kib"]) * 1024


def run_cp(source: Path, target: Path) -> tuple[float, int | None]:
    """`cp -r` wall time and peak RSS, the latter from GNU time (a small forking parent) when installed."""
    timer = ["/usr/bin/time", "-f", "%M"] if os.access("/usr/bin/time", os.X_OK) else []
    started = time.perf_counter()
    done = subprocess.run([*timer, "cp", "-r", str(source), str(target)], check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    return elapsed, int(done.stderr.split()[-1]) * 1024 if timer else None


# -- data ---------------------------------------------------------------------------------------


def write_data(root: Path, size: int, objects: int) -> dict[str, Path]:
    """`one/blob.bin` (size bytes) and `many/part-NNNN.bin` (`objects` files, same total): incompressible."""
    block = os.urandom(8 * MiB)
    one, many = root / "one", root / "many"
    one.mkdir(parents=True)
    many.mkdir(parents=True)
    with open(one / "blob.bin", "wb") as fh:
        for offset in range(0, size, len(block)):
            fh.write(block[: min(len(block), size - offset)])
    each = size // objects
    for i in range(objects):
        n = each if i < objects - 1 else size - each * (objects - 1)
        start = (i * 4096) % max(1, len(block) - n)
        data = block[start : start + n] if n <= len(block) else os.urandom(n)
        (many / f"part-{i:04d}.bin").write_bytes(data)
    return {"1 object": one, f"{objects} objects": many}


# -- measurement --------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    layout: str
    kind: str  # "s3" | "s3-inproc" | "cp" | "local" | "fastfile"
    seconds: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # staging process peak, bytes
    moto: list[int] = field(default_factory=list)  # moto host VmHWM growth, bytes

    def median(self) -> float:
        return statistics.median(self.seconds)


def fresh(path: Path) -> Path:
    """An absent destination, with the previous run's dirty pages written back so they don't bill the next."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    return path


def measure(series: Series, fn: Callable[[], tuple[float, int | None]]) -> None:
    before = reset_peak()
    seconds, rss = fn()
    series.moto.append(peak_growth_kib(before) * 1024)
    series.seconds.append(seconds)
    if rss is not None:
        series.rss.append(rss)


def fastfile_cost(layout: HostLayout, source: Path, runs: int) -> tuple[float, float, float, float]:
    """FastFile with a local source: the platform's whole cost is one more bind entry. Returns medians of
    (HostLayout.binds, docker create without the channel bind, with it, with minus without)."""
    import build
    import docker

    client = docker.from_env()
    try:
        image = build.build(client, REPO / "benchmarks" / "images" / "noop")
        labels = {"sm-contract.bench": f"staging-{uuid.uuid4().hex[:6]}"}
        binds_s, without, with_bind = [], [], []
        for _ in range(runs * 3):
            t = time.perf_counter()
            full = layout.binds(("train",), {"train": source})
            binds_s.append(time.perf_counter() - t)
            base = {k: v for k, v in full.items() if k != str(source)}
            for binds, out in ((base, without), (full, with_bind)):
                t = time.perf_counter()
                container = client.api.create_container(
                    image, "train", labels=labels, host_config=client.api.create_host_config(binds=binds)
                )
                out.append(time.perf_counter() - t)
                client.api.remove_container(container["Id"], force=True, v=True)
        med = statistics.median
        return med(binds_s), med(without), med(with_bind), med(with_bind) - med(without)
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="channel size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--objects", type=int, default=1000, help="objects in the many-object layout (default 1000)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return 0
    size, runs = args.size_mib * MiB, args.runs

    setup: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="sm-staging-bench-", dir="/tmp"))
    s3 = S3Server()
    _KEYS[:] = [s3.keys.access_key_id, s3.keys.secret_access_key]
    uploads: list[tuple[str, float, int, int, int]] = []
    try:
        started = time.perf_counter()
        sources = write_data(work / "src", size, args.objects)
        os.sync()
        setup[f"write {2 * args.size_mib} MiB of source data + sync"] = time.perf_counter() - started
        started = time.perf_counter()
        s3.start()
        s3.ensure_bucket(BUCKET)
        setup["moto server start"] = time.perf_counter() - started
        moto_base = _status_kib("VmRSS") * 1024
        _s, floor_rss = run_child({"kind": "floor", "endpoint": s3.endpoint_url})

        uris: dict[str, str] = {}
        for layout, source in sources.items():
            uris[layout] = f"s3://{BUCKET}/{source.name}"
            before = reset_peak()
            seconds, rss = run_child(
                {"kind": "upload", "endpoint": s3.endpoint_url, "source": str(source), "uri": uris[layout]}
            )
            growth = peak_growth_kib(before) * 1024
            kept = (_status_kib("VmRSS") - before) * 1024
            uploads.append((layout, seconds, rss, growth, kept))

        dest = work / "dest"
        all_series: list[Series] = []
        variants: list[tuple[Series, Callable[[], tuple[float, int | None]]]] = []
        for layout, source in sources.items():
            uri, target = uris[layout], dest / source.name

            def s3_child(uri: str = uri, target: Path = target) -> tuple[float, int | None]:
                task = {"kind": "stage", "endpoint": s3.endpoint_url, "uri": uri, "dest": str(fresh(target))}
                return run_child(task)

            def s3_inproc(uri: str = uri, target: Path = target) -> tuple[float, int | None]:
                channel, out = ChannelSpec(name="train", s3_uri=uri), fresh(target)
                t = time.perf_counter()
                stage_channel(s3, channel, out, host_index=0, host_count=1, role_arn=ROLE, region=REGION)
                return time.perf_counter() - t, None

            def cp(source: Path = source, target: Path = target) -> tuple[float, int | None]:
                return run_cp(source, fresh(target))

            def local(uri: str = uri, source: Path = source, target: Path = target) -> tuple[float, int | None]:
                return run_child({"kind": "local", "uri": uri, "source": str(source), "dest": str(fresh(target))})

            variants += [
                (Series(f"S3 stage_channel over HTTP, child ({layout})", layout, "s3"), s3_child),
                (Series(f"S3 stage_channel, moto's process ({layout})", layout, "s3-inproc"), s3_inproc),
                (Series(f"cp -r ({layout})", layout, "cp"), cp),
                (Series(f"local dir, copy-on-write overlay ({layout})", layout, "local"), local),
            ]
        all_series = [s for s, _fn in variants]
        started = time.perf_counter()
        for _series, fn in variants:  # first GETs after upload, first touch of fresh memory in a VM
            fn()
        setup["warm-up round (one run of every variant, untimed)"] = time.perf_counter() - started
        bench_started = time.perf_counter()
        for _ in range(runs):
            for series, fn in variants:
                measure(series, fn)
        bench_seconds = time.perf_counter() - bench_started

        started = time.perf_counter()
        host = HostLayout(work / "host", None)
        host.create()
        ff_binds, ff_without, ff_with, ff_delta = fastfile_cost(host, sources["1 object"], runs)
        setup["FastFile bind measurement (image build cached + creates)"] = time.perf_counter() - started
    finally:
        cleanup_started = time.perf_counter()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
        cleanup_seconds = time.perf_counter() - cleanup_started

    # -- report ---------------------------------------------------------------------------------
    mib = args.size_mib

    def mb(n: float) -> str:
        return f"{n / 1e6:8.0f}"

    print(f"channel: {mib} MiB as 1 object and as {args.objects} objects; {os.cpu_count()} CPUs; work dir {work}")
    print(
        f"moto host process RSS after start: {moto_base / 1e6:.0f} MB; an idle child (python+boto3): "
        f"{floor_rss / 1e6:.0f} MB peak"
    )
    print("\nsetup (once, s)")
    for what, seconds in setup.items():
        print(f"  {seconds:7.2f}  {what}")
    print("\nupload into moto (S3Server.upload_path in a child: upload_file, multipart above 8 MiB; 1 run)")
    print(f"  {'layout':<14} {'s':>7} {'MiB/s':>7} {'child MB':>9} {'moto peak+ MB':>14} {'moto kept MB':>13}")
    for layout, seconds, rss, growth, kept in uploads:
        print(f"  {layout:<14} {seconds:7.2f} {mib / seconds:7.0f} {mb(rss):>9} {mb(growth):>14} {mb(kept):>13}")

    cp_median = {s.layout: s.median() for s in all_series if s.kind == "cp"}
    ff_seconds = ff_binds + max(0.0, ff_delta)
    print(f"\nstaging: {runs} runs each, interleaved, {bench_seconds:.1f} s in all; medians")
    head = f"  {'variant':<50} {'s':>8} {'min s':>8} {'MiB/s':>8} {'vs cp':>7} {'staging MB':>11} {'moto peak+ MB':>14}"
    print(head)
    for s in all_series:
        med = s.median()
        rss = mb(statistics.median(s.rss)) if s.rss else "(= moto's)"
        moto_growth = mb(statistics.median(s.moto)) if s.kind.startswith("s3") else "-"
        ratio = cp_median[s.layout] / med
        fast = min(s.seconds)
        print(f"  {s.name:<50} {med:8.3f} {fast:8.3f} {mib / med:8.0f} {ratio:6.2f}x {rss:>11} {moto_growth:>14}")
    ff_ratio = cp_median["1 object"] / ff_seconds if ff_seconds > 0 else float("inf")
    name = "local FastFile ro bind (any layout)"
    print(f"  {name:<50} {ff_seconds:8.4f} {'-':>8} {'-':>8} {ff_ratio:6.0f}x {'-':>11} {'-':>14}")
    print(
        f"    FastFile: HostLayout.binds {ff_binds * 1e6:.0f} us; docker create without the channel bind "
        f"{ff_without * 1000:.1f} ms, with it {ff_with * 1000:.1f} ms (delta {ff_delta * 1000:+.1f} ms, "
        f"counted as max(0, delta)); nothing is copied"
    )

    print("\nverdicts")
    for s in all_series:
        ratio = cp_median[s.layout] / s.median()
        if s.kind in ("s3", "s3-inproc"):
            ok = ratio >= S3_MIN_RATIO
            line = f"  {'MEETS ' if ok else 'MISSES'} {s.name}: {ratio:.2f}x cp's throughput (target >= {S3_MIN_RATIO})"
            peak, what = (max(s.rss), "peak RSS") if s.rss else (max(s.moto), "process peak growth")
            line += f"; {what} {peak / 1e6:.0f} MB (max of runs) {'MEETS' if peak <= RSS_LIMIT else 'MISSES'} <= 300 MB"
            print(line)
        elif s.kind == "local":
            ok = ratio >= LOCAL_MIN_RATIO
            print(f"  {'MEETS ' if ok else 'MISSES'} {s.name}: {ratio:.0f}x faster than cp (target >= 10)")
    ok = ff_ratio >= LOCAL_MIN_RATIO
    print(f"  {'MEETS ' if ok else 'MISSES'} local FastFile ro bind: {ff_ratio:.0f}x faster than cp (target >= 10)")
    print(f"\ncleanup: {cleanup_seconds:.1f} s; moto stopped; {work} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
