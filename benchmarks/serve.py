"""A 1-s training job through `sm-contract serve`'s API against the same job on the platform directly.

Target (issue 19): a 1-s job through the SageMaker SDK's `Estimator.fit` completes in at most 1.5x the time
of the same job through the platform as `pytest --sm-image` runs it, and SDK polling costs no noticeable
CPU. Variants run interleaved, one of each per round, after an untimed warm-up round:

* ``platform``  TrainingPlatform.start(spec).wait(): what the `training_job` fixture and the suite do
* ``boto3``     create_training_job, then DescribeTrainingJob every 0.2 s until the job has ended
* ``sdk fit``   Estimator(image_uri=...).fit(logs=True) in a subprocess (only where `import sagemaker` works;
                SM_CONTRACT_TEST_SDK_PATH names a `pip install --target` folder), timed inside it

The server's CPU time (this process: API server and platform threads) per second of the SDK's `fit` is
printed too.

    python benchmarks/serve.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "examples")]

import build  # noqa: E402
import docker  # noqa: E402

from pytest_sagemaker_contract.api import ApiServer, LocalPlatform  # noqa: E402
from pytest_sagemaker_contract.spec import parse_request  # noqa: E402

FIT = """
import sys, time
from sagemaker.estimator import Estimator
import sagemaker
session = sagemaker.Session()
estimator = Estimator(image_uri=sys.argv[1], role="arn:aws:iam::123456789012:role/R", instance_count=1,
                      instance_type="ml.m5.large", sagemaker_session=session, environment={"EPOCHS": "1"})
start = time.monotonic()
estimator.fit(logs=True, job_name=sys.argv[2])
print("FIT_SECONDS", time.monotonic() - start)
"""


def request(name: str, image: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://sagemaker-us-east-1-123456789012/bench"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        "Environment": {"EPOCHS": "1"},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    image = str(build.build(docker.from_env(), REPO / "tests" / "images" / "epochs"))
    local = LocalPlatform(grace_s=10)
    platform = local.start()
    api = ApiServer(platform).start()
    try:
        sm = api.client("sagemaker")
        api.client("s3").create_bucket(Bucket="sagemaker-us-east-1-123456789012")
        env = api.env()
        sdk_path = os.environ.get("SM_CONTRACT_TEST_SDK_PATH", "")
        if sdk_path:
            env["PYTHONPATH"] = sdk_path
        env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
        has_sdk = (
            subprocess.run([sys.executable, "-c", "import sagemaker"], env=env, capture_output=True).returncode == 0
        )
        times: dict[str, list[float]] = {"platform": [], "boto3": [], "sdk fit": []}
        cpu_per_s: list[float] = []
        for round_ in range(args.rounds + 1):
            tag = uuid.uuid4().hex[:6]
            start = time.monotonic()
            platform.start(parse_request(request(f"bench-p-{tag}", image))).wait()
            platform_s = time.monotonic() - start

            start = time.monotonic()
            sm.create_training_job(**request(f"bench-b-{tag}", image))
            while sm.describe_training_job(TrainingJobName=f"bench-b-{tag}")["TrainingJobStatus"] == "InProgress":
                time.sleep(0.2)
            boto3_s = time.monotonic() - start

            fit_s = None
            if has_sdk:
                cpu = os.times()
                done = subprocess.run(
                    [sys.executable, "-c", FIT, image, f"bench-s-{tag}"], env=env, capture_output=True, text=True
                )
                after = os.times()
                line = [x for x in done.stdout.splitlines() if x.startswith("FIT_SECONDS")]
                if done.returncode != 0 or not line:
                    sys.exit(f"fit failed: {done.stderr[-2000:]}")
                fit_s = float(line[0].split()[1])
                cpu_per_s.append((after.user + after.system - cpu.user - cpu.system) / fit_s)
            if round_ == 0:
                cpu_per_s.clear()
                continue  # warm-up
            times["platform"].append(platform_s)
            times["boto3"].append(boto3_s)
            if fit_s is not None:
                times["sdk fit"].append(fit_s)
        base = statistics.median(times["platform"])
        for name, values in times.items():
            if not values:
                print(f"{name:9s} not measured (the SageMaker SDK is not importable)")
                continue
            median = statistics.median(values)
            print(
                f"{name:9s} median {median:6.2f} s  ({median / base:4.1f}x the platform)  runs: "
                + ", ".join(f"{v:.2f}" for v in values)
            )
        if cpu_per_s:
            print(f"server CPU during fit: {statistics.median(cpu_per_s) * 100:.1f}% of one core (median)")
    finally:
        api.close()
        local.close()


if __name__ == "__main__":
    main()
