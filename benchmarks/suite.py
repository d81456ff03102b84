"""The built-in suite's wall time against its longest job: checks run concurrently (--sm-parallel).

python benchmarks/suite.py [--seconds 20]

1. benchmarks/images/sleeper: a compliant image whose training sleeps T seconds (1-s epochs, saves on
   SIGTERM, checkpoints), under the full suite with checkpoints, three input modes and two hosts:
   the wall time at --sm-parallel 16 and at --sm-parallel 1 (one check after another, the suite's
   behaviour before concurrency), the sum of the checks' own times, and wall / T.
2. The kmeans example's full suite (the demo's options) at the default --sm-parallel and at 1.
Target for (1): wall <= 1.5 x T + setup on this 2-core machine (the jobs are sleep-bound).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import build  # noqa: E402
import demo  # noqa: E402


def run(args: list[str]) -> tuple[float, dict[str, float], str]:
    """Wall seconds, each check's own duration, and the tail of the output."""
    with tempfile.TemporaryDirectory() as out:
        report = Path(out) / "report.json"
        started = time.perf_counter()
        done = subprocess.run([*args, f"--sm-report={report}", "-q"], cwd=out, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"suite failed ({done.returncode}):\n{done.stdout[-4000:]}")
        checks = json.loads(report.read_text())["images"][0]["checks"]
    return wall, {c["id"]: float(c["duration_s"]) for c in checks}, done.stdout[-1500:]


def sleeper_suite(image: str, seconds: int, data: Path, parallel: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(data),
        "-p",
        "no:cacheprovider",
        f"--sm-image={image}",
        f"--sm-hyperparameter=seconds={seconds}",
        f"--sm-channel=train={data}",
        "--sm-input-modes=File,FastFile,Pipe",
        "--sm-instance-count=2",
        "--sm-checkpoints",
        "--sm-stop-on-log=^epoch 2/",
        "--sm-resume-log=resuming from checkpoint",
        "--sm-grace=30",
        f"--sm-parallel={parallel}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20, help="T: how long each training run sleeps")
    options = parser.parse_args()
    client = docker.from_env()
    sleeper = build.build(client, REPO / "benchmarks" / "images" / "sleeper")
    kmeans = build.build(client, "kmeans")
    t = options.seconds
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for i in range(4):
            (data / f"part-{i}.csv").write_text("1,2,3\n" * 100)
        rows = []
        for parallel in (16, 1):
            wall, durations, _tail = run(sleeper_suite(sleeper, t, data, parallel))
            rows.append((parallel, wall, sum(durations.values()), max(durations.values())))
    print(f"sleeper image, T = {t} s per training run (full suite: checkpoints, File/FastFile/Pipe, 2 hosts)")
    print(f"{'--sm-parallel':>14} {'wall s':>8} {'sum of checks s':>16} {'longest check s':>16} {'wall/T':>7}")
    for parallel, wall, total, longest in rows:
        print(f"{parallel:>14} {wall:>8.1f} {total:>16.1f} {longest:>16.1f} {wall / t:>7.2f}")
    print(f"speedup: {rows[1][1] / rows[0][1]:.2f}x")
    kmeans_rows = []
    for parallel in (None, 1):
        extra = [] if parallel is None else [f"--sm-parallel={parallel}"]
        wall, durations, _tail = run(demo.suite_command(kmeans, *extra))
        kmeans_rows.append(("default" if parallel is None else str(parallel), wall, sum(durations.values())))
    print("kmeans example, the demo's options")
    for label, wall, total in kmeans_rows:
        print(f"{label:>14} {wall:>8.1f} {total:>16.1f}")
    print(f"speedup: {kmeans_rows[1][1] / kmeans_rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
