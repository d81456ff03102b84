"""Peak memory of the test process while a training job prints a large log.

    python benchmarks/memory.py [--case logs|model] [--bytes N] [--image-dir DIR]

Runs ``benchmarks/images/chatty`` (busybox: ``yes 0123…789 | head -c N``, default 500 MB, then a last
line without a newline) through ``TrainingPlatform.run`` and prints the process's peak resident memory
growth over the run: VmHWM (reset through /proc/self/clear_refs just before the job where the kernel
allows) minus VmRSS before the job. It also checks that the log is complete: the spooled log file's
size and that ``result.log_tail(1)`` is the container's real last line.

`--case pipe` feeds a local channel of one N-byte file (default 1 GiB) in Pipe mode to a container that
reads its FIFO to the end (the file is put into moto first, as Pipe mode needs S3 keys).
`--case model` instead writes one file of N random bytes (default 1 GiB) into /opt/ml/model and prints
the peak growth over the job (packing model.tar.gz and putting it into moto) and over
`result.extract_model(...)`.

Covered: the log path (one host) and a large model. Not covered yet: multi-host jobs (several followers
at once), Pipe-mode feeders, large File-mode channels (staging from moto), and a log that is one huge
line without newlines.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "examples")]

import build  # noqa: E402
import docker  # noqa: E402

from pytest_sagemaker_contract.jobs import job_name, with_overrides  # noqa: E402
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform  # noqa: E402
from pytest_sagemaker_contract.spec import parse_request  # noqa: E402

IMAGE_DIR = Path(__file__).resolve().parent / "images" / "chatty"


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: `echo 5 > /proc/PID/clear_refs`); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def bench_platform(image_dir: Path) -> Iterator[tuple[TrainingPlatform, str]]:
    """The image built from `image_dir` and a platform of its own on the local engine, removed afterwards."""
    image = str(build.build(docker.from_env(), image_dir))
    workdir = Path(tempfile.mkdtemp(prefix="sm-bench-memory-"))
    engine = Engine()
    s3 = S3Server().start()
    platform = TrainingPlatform(engine, s3, workdir, run_id=f"bm{uuid.uuid4().hex[:6]}")
    try:
        yield platform, image
    finally:
        platform.close()
        s3.stop()
        engine.client.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("logs", "model", "pipe"), default="logs")
    parser.add_argument("--bytes", type=int, default=0, help="log size (default 500 MB) or model size (1 GiB)")
    parser.add_argument("--image-dir", type=Path, default=IMAGE_DIR)
    args = parser.parse_args()
    args.bytes = args.bytes or (500_000_000 if args.case == "logs" else 2**30)
    if args.case == "model":
        return model_case(args.bytes, args.image_dir)
    if args.case == "pipe":
        return pipe_case(args.bytes, args.image_dir)

    with bench_platform(args.image_dir) as (platform, image):
        request = with_overrides(
            None, name=job_name("bench-memory"), image=image, environment={"LOG_BYTES": str(args.bytes)}
        )
        spec = parse_request(request)
        rss_before = _status_kib("VmRSS")
        reset = _reset_peak()
        hwm_before = _status_kib("VmHWM")
        started = time.monotonic()
        result = platform.run(spec, timeout=1800)
        took = time.monotonic() - started
        hwm_after = _status_kib("VmHWM")
        base = rss_before if reset else hwm_before
        log_path = getattr(result, "log_path", None)
        spooled = os.path.getsize(log_path) if log_path and os.path.exists(log_path) else None
        print(f"job: {result.TrainingJobStatus} in {took:.1f} s, container log {args.bytes / 1e6:.0f} MB")
        print(f"RSS before the job: {rss_before / 1024:.1f} MiB; peak during it: {hwm_after / 1024:.1f} MiB")
        if not reset:
            print("(VmHWM could not be reset: the growth is measured from the earlier peak)")
        print(f"peak RSS growth: {(hwm_after - base) / 1024:.1f} MiB")
        print(f"result.logs: {len(result.logs) / 1e6:.1f} MB of text in memory")
        print(f"spooled log file: {log_path} ({'-' if spooled is None else f'{spooled / 1e6:.1f} MB'})")
        # `head -c` cuts the last `yes` line short, so the final printf lands on the same line.
        print(f"log_tail(1) ends with the real last line: {result.log_tail(1).endswith('the real last line')}")
        del result
    return 0


def pipe_case(size: int, image_dir: Path) -> int:
    data = Path(tempfile.mkdtemp(prefix="sm-bench-pipe-"))
    try:
        with bench_platform(image_dir) as (platform, image):
            with open(data / "part-0.bin", "wb") as out:
                for _ in range(size // 2**20):
                    out.write(os.urandom(2**20))
            script = "echo read $(wc -c < /opt/ml/input/data/train_0) bytes; echo m > /opt/ml/model/m"
            request = with_overrides(
                None,
                name=job_name("bench-pipe"),
                image=image,
                entrypoint=["/bin/sh", "-c", script],
                input_mode="Pipe",
                channel_uris={"train": f"s3://sagemaker-contract/{platform.run_id}/pipe/"},
            )
            rss_before = _status_kib("VmRSS")
            reset = _reset_peak()
            started = time.monotonic()
            result = platform.run(parse_request(request), timeout=1800, local_channels={"train": data})
            took = time.monotonic() - started
            print(f"job: {result.TrainingJobStatus} in {took:.1f} s; {result.log_tail(2)}")
            growth = (_status_kib("VmHWM") - rss_before) / 1024
            print(f"peak RSS growth (upload into moto + feeding the FIFO): {growth:.1f} MiB")
            if not reset:
                print("(VmHWM could not be reset: figures are measured from the earlier peak)")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


def model_case(size: int, image_dir: Path) -> int:
    with bench_platform(image_dir) as (platform, image):
        script = f"head -c {size} /dev/urandom > /opt/ml/model/weights.bin"
        request = with_overrides(None, name=job_name("bench-model"), image=image, entrypoint=["/bin/sh", "-c", script])
        rss_before = _status_kib("VmRSS")
        reset = _reset_peak()
        started = time.monotonic()
        result = platform.run(parse_request(request), timeout=1800)
        took = time.monotonic() - started
        job_peak = _status_kib("VmHWM")
        print(f"job: {result.TrainingJobStatus} in {took:.1f} s, model file {size / 2**30:.2f} GiB (random bytes)")
        print(f"peak RSS growth over the job (pack + upload into moto): {(job_peak - rss_before) / 1024:.1f} MiB")
        rss_before = _status_kib("VmRSS")
        reset = _reset_peak() and reset
        with tempfile.TemporaryDirectory(prefix="sm-bench-extract-") as out:
            result.extract_model(out)
            extracted = os.path.getsize(Path(out) / "weights.bin")
        print(f"peak RSS growth over extract_model: {(_status_kib('VmHWM') - rss_before) / 1024:.1f} MiB")
        print(f"extracted weights.bin: {extracted == size}")
        if not reset:
            print("(VmHWM could not be reset: figures are measured from the earlier peak)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
