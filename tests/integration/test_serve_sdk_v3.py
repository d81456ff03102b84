"""SageMaker Python SDK v3's `ModelTrainer` against `sm-contract serve`, as a user runs it.

SDK v3 cannot share an environment with v2 (the `[sdk]` extra) and installs ~1 GB in ~12 minutes, so it
lives in a virtual environment of its own: SM_CONTRACT_TEST_SDK3_PYTHON names its interpreter (.ci/run
builds one beside the test run). Without it this test is skipped, and says how to run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest_helpers import IMAGES

SDK3_PYTHON = os.environ.get("SM_CONTRACT_TEST_SDK3_PYTHON", "")

SCRIPT = r"""
import sys
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, StoppingCondition

epochs, failing = sys.argv[1], sys.argv[2]


def trainer(image, name, **env):
    return ModelTrainer(
        training_image=image,
        role="arn:aws:iam::123456789012:role/SageMakerRole",
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=300),
        base_job_name=name,
        environment=env,
    )


done = trainer(epochs, "v3-fit", EPOCHS="2")
done.train(wait=True, logs=False)
job = done._latest_training_job
print("STATUS", job.training_job_status, job.model_artifacts.s3_model_artifacts)
try:
    trainer(failing, "v3-fails").train(wait=True, logs=False)
except Exception as exc:
    print("FAILURE", type(exc).__name__, exc)
"""


@pytest.mark.skipif(
    not SDK3_PYTHON,
    reason="SDK v3 needs its own venv: python3 -m venv V && V/bin/pip install 'sagemaker>=3' && "
    "SM_CONTRACT_TEST_SDK3_PYTHON=V/bin/python",
)
def test_model_trainer_trains_and_reports_a_failure(example_image: Callable[[str | Path], str], tmp_path: Path) -> None:
    epochs, failing = example_image(IMAGES / "epochs"), example_image(IMAGES / "fails-with-log")
    script = tmp_path / "train_v3.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "pytest_sagemaker_contract", "serve", "--grace", "10", "--"]
    done = subprocess.run(
        [*command, SDK3_PYTHON, str(script), epochs, failing],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "STATUS Completed s3://sagemaker-us-east-1-123456789012/v3-fit/v3-fit-" in out, out + done.stderr[-2000:]
    assert "/output/model.tar.gz" in out
    failure = out.split("FAILURE", 1)[1] if "FAILURE" in out else ""
    assert "loss diverged" in failure, out + done.stderr[-2000:]


IAM_SCRIPT = r"""
import boto3, botocore.exceptions
iam = boto3.client("iam")
for call in (
    lambda: iam.simulate_principal_policy(PolicySourceArn="arn:aws:iam::1:role/R", ActionNames=["s3:GetObject"]),
    lambda: iam.get_role(RoleName="R"),
):
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        print("IAM", exc.response["Error"]["Code"], exc.response["Error"]["Message"])
"""


def test_iam_is_served_as_access_denied_so_role_checks_go_on(tmp_path: Path) -> None:
    """SDK v3 validates the role through IAM before CreateTrainingJob: an endpoint that does not answer stops it
    with a connection error; AccessDenied is what the SDK reads as "cannot verify" and goes on from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "pytest_sagemaker_contract", "serve", "--"]
    done = subprocess.run(
        [*command, sys.executable, "-c", IAM_SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("IAM ")]
    assert lines == [
        "IAM AccessDenied sm-contract does not simulate IAM (SimulatePrincipalPolicy): roles are accepted as given "
        "and never checked",
        "IAM AccessDenied sm-contract does not simulate IAM (GetRole): roles are accepted as given and never checked",
    ], done.stdout
    assert "export AWS_ENDPOINT_URL_IAM=" in done.stdout
