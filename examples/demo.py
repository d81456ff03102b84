"""The main job, end to end: build examples/kmeans and run the SageMaker contract suite against it.

    python examples/demo.py [extra pytest args...]

Builds from python:3.12-slim where a registry answers, else from an offline Debian base (see
build.py), then runs `pytest --sm-image ...` with the example's real-shaped job.json and its data
as the `train` channel, printing the contract table and writing sm-report.json.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402


def suite_command(image: str, *extra: str) -> list[str]:
    """`python -m pytest` running the whole contract suite on the kmeans example (demo and benchmarks)."""
    kmeans = HERE / "kmeans"
    return [
        sys.executable,
        "-m",
        "pytest",
        str(kmeans),
        "-p",
        "no:cacheprovider",
        f"--sm-image={image}",
        f"--sm-job={kmeans / 'job.json'}",
        f"--sm-channel=train={kmeans / 'data'}",
        "--sm-expect-model=model.json",
        "--sm-stop-after=1.5",
        "--sm-grace=20",
        "--sm-checkpoints",
        "--sm-resume-log=resuming from checkpoint",
        *extra,
    ]


def main(argv: list[str]) -> int:
    client = docker.from_env()
    try:
        image = build.build(client, "kmeans")
    except Exception as exc:
        print(f"demo: building examples/kmeans failed: {exc}", file=sys.stderr)
        return 1
    command = suite_command(image, "--sm-report=sm-report.json", *argv)
    print("demo: " + " ".join(command[2:]), flush=True)
    return subprocess.call(command, cwd=HERE.parent)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
