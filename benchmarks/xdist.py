"""The built-in suite on the kmeans example at -n 0 vs -n 2, interleaved, printing wall times and the speedup.

python benchmarks/xdist.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
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


def run_suite(image: str, workers: int) -> float:
    args = demo.suite_command(image, "-q")
    if workers:
        args += ["-n", str(workers)]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        done = subprocess.run(args, cwd=out, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"-n {workers} failed:\n{done.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    image = build.build(docker.from_env(), "kmeans")
    times: dict[int, list[float]] = {0: [], 2: []}
    for _ in range(opts.rounds):
        for workers in (0, 2):
            times[workers].append(run_suite(image, workers))
            print(f"-n {workers}: {times[workers][-1]:.1f} s", flush=True)
    serial, parallel = statistics.median(times[0]), statistics.median(times[2])
    print(f"median -n 0 {serial:.1f} s, -n 2 {parallel:.1f} s: speedup {serial / parallel:.2f}x (2 cores)")


if __name__ == "__main__":
    main()
