"""The stop timeline of concurrent jobs against the engine's own record (`docker events`).

python benchmarks/timeline.py [--jobs 8] [--grace 3]

Starts N jobs at once (tests/images/slow-handler: saves for ~8 s on SIGTERM), stops them all with a
grace shorter than the handler (so every one is SIGKILLed) and prints, per event, the largest gap
between what the platform's timeline says and when the engine logged it: SIGTERM sent (kill 15),
SIGKILL sent (kill 9), and the exit (die). Target: each within 0.5 s for every concurrent job.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import build  # noqa: E402

from pytest_sagemaker_contract.jobs import job_name, with_overrides  # noqa: E402
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingJob, TrainingPlatform  # noqa: E402
from pytest_sagemaker_contract.spec import parse_request  # noqa: E402


def engine_events(engine: Engine, container: str, since: float) -> dict[str, float]:
    seen: dict[str, float] = {}
    for event in engine.api.events(
        since=int(since), until=int(time.time()) + 1, filters={"container": container}, decode=True
    ):
        action = event.get("Action") or event.get("status", "")
        signal = event.get("Actor", {}).get("Attributes", {}).get("signal")
        key = {"kill": {"15": "sigterm", "9": "sigkill"}.get(signal or ""), "die": "die"}.get(action)
        if key:
            seen.setdefault(key, event["timeNano"] / 1e9)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--grace", type=float, default=3.0)
    options = parser.parse_args()
    image = build.build(docker.from_env(), REPO / "tests" / "images" / "slow-handler")
    engine = Engine()
    with S3Server() as s3, tempfile.TemporaryDirectory() as work:
        platform = TrainingPlatform(engine, s3, Path(work))
        since = time.time() - 1
        specs = [parse_request(with_overrides(None, name=job_name(f"tl{i}"), image=image)) for i in range(options.jobs)]
        with ThreadPoolExecutor(options.jobs) as pool:
            jobs: list[TrainingJob] = list(pool.map(platform.start, specs))
            for job in jobs:
                assert job.wait_for_log("step 1", timeout=120)
            list(pool.map(lambda job: job.stop(grace=options.grace), jobs))
            results = list(pool.map(lambda job: job.wait(300), jobs))
        gaps: dict[str, list[float]] = {"sigterm": [], "sigkill": [], "die": []}
        for job, result in zip(jobs, results, strict=True):
            seen = engine_events(engine, job.container_ids[0], since)
            tl = result.timeline
            for key, ours in (("sigterm", tl.sigterm_sent), ("sigkill", tl.sigkill_sent), ("die", tl.exited)):
                if ours is not None and key in seen:
                    gaps[key].append(abs(seen[key] - ours))
        platform.close()
    print(f"{options.jobs} concurrent jobs, grace {options.grace} s (every job SIGKILLed)")
    for key, values in gaps.items():
        worst = max(values) if values else float("nan")
        print(f"  {key:<8} matched {len(values)}/{options.jobs}  largest gap to docker events {worst:.3f} s")


if __name__ == "__main__":
    main()
