"""Users' own AWS code against the `sagemaker_api` fixture (pytester, real engine): boto3 through `client()`,
the AWS CLI, the SageMaker Python SDK v2 and sagemaker-core (its `TrainingJob.create`, what SDK v3 builds on)
as subprocesses with `env()`, each unchanged but for endpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest_helpers import IMAGES, run_suite

#: Copied into the pytester folder, where the users' tests import it.
REQUESTS = Path(__file__).with_name("training_requests.py")

#: Where the SDK is when it is not installed into this interpreter (a `pip install --target` folder).
SDK_PATH = os.environ.get("SM_CONTRACT_TEST_SDK_PATH", "")

USER_TESTS = r"""
import json
import os
import subprocess
import sys
import time

import pytest

from training_requests import training_request

EPOCHS = os.environ["EPOCHS_IMAGE"]


def request(name, image=EPOCHS, **extra):
    return training_request(name, image, "s3://sagemaker-us-east-1-123456789012/out", **extra)


def test_boto3_through_the_fixture(sagemaker_api):
    assert set(sagemaker_api.endpoints) == {"sagemaker", "s3", "logs", "sts", "iam"}
    sagemaker_api.client("s3").create_bucket(Bucket="sagemaker-us-east-1-123456789012")
    sm = sagemaker_api.client("sagemaker")
    sm.create_training_job(**request("fixture-job", Environment={"EPOCHS": "2"}))
    result = sagemaker_api.result("fixture-job", timeout=120)
    assert result.TrainingJobStatus == "Completed", result.FailureReason
    assert "trained 2 epochs" in result.logs
    assert sm.describe_training_job(TrainingJobName="fixture-job")["TrainingJobStatus"] == "Completed"


def aws(sagemaker_api, *args):
    done = subprocess.run(["aws", *args], env=sagemaker_api.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not os.environ.get("AWS_CLI"), reason="the AWS CLI is not installed (pip install awscli)")
def test_aws_cli_create_describe_stop(sagemaker_api, tmp_path):
    sagemaker_api.client("s3").create_bucket(Bucket="sagemaker-us-east-1-123456789012")
    job = tmp_path / "job.json"
    job.write_text(json.dumps(request("cli-job", Environment={"EPOCHS": "100"})))
    created = json.loads(aws(sagemaker_api, "sagemaker", "create-training-job", "--cli-input-json", f"file://{job}"))
    assert created["TrainingJobArn"].endswith(":training-job/cli-job")
    deadline = time.monotonic() + 60
    while "epoch 1" not in aws(sagemaker_api, "logs", "get-log-events", "--log-group-name",
                               "/aws/sagemaker/TrainingJobs", "--log-stream-name", stream(sagemaker_api, "cli-job")):
        assert time.monotonic() < deadline, "no 'epoch 1' in the job's CloudWatch stream within 60 s"
        time.sleep(0.2)
    aws(sagemaker_api, "sagemaker", "stop-training-job", "--training-job-name", "cli-job")
    aws(sagemaker_api, "sagemaker", "wait", "training-job-completed-or-stopped", "--training-job-name", "cli-job")
    described = json.loads(aws(sagemaker_api, "sagemaker", "describe-training-job", "--training-job-name", "cli-job"))
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert described["ModelArtifacts"]["S3ModelArtifacts"].endswith("/out/cli-job/output/model.tar.gz")
    result = sagemaker_api.result("cli-job", timeout=60)
    assert result.timeline.seconds_to_exit_after_sigterm < 20
    assert any("saved" in line for line in result.logs_after_sigterm)
    listing = aws(sagemaker_api, "s3", "ls", "s3://sagemaker-us-east-1-123456789012/out/cli-job/output/")
    assert "model.tar.gz" in listing


def stream(sagemaker_api, job):
    logs = sagemaker_api.client("logs")
    deadline = time.monotonic() + 60
    while True:
        streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job}/")
        if streams["logStreams"]:
            return streams["logStreams"][0]["logStreamName"]
        assert time.monotonic() < deadline, "no log stream within 60 s"
        time.sleep(0.2)
"""

SDK_SCRIPT = r"""
import sys
import boto3
import sagemaker
from sagemaker.estimator import Estimator
from sagemaker.exceptions import UnexpectedStatusException

epochs, failing = sys.argv[1], sys.argv[2]
session = sagemaker.Session()
bucket = session.default_bucket()
boto3.client("s3").put_object(Bucket=bucket, Key="data/train/a.csv", Body=b"1,2\n")


def estimator(image, **env):
    return Estimator(
        image_uri=image, role="arn:aws:iam::123456789012:role/SageMakerRole", instance_count=1,
        instance_type="ml.m5.large", sagemaker_session=session, environment=env, max_run=300,
    )


done = estimator(epochs, EPOCHS="2")
done.fit(inputs={"train": f"s3://{bucket}/data/train"}, logs=True, job_name="sdk-fit")
print("MODEL_DATA", done.model_data)
try:
    estimator(failing).fit(logs=True, job_name="sdk-fails")
except UnexpectedStatusException as exc:
    print("FAILURE", exc)
stopped = estimator(epochs, EPOCHS="300")
stopped.fit(wait=False, job_name="sdk-stop")
job = stopped.latest_training_job
while "Training" != session.describe_training_job(job.name)["SecondaryStatus"]:
    pass
job.stop()
job.wait(logs=False)
print("STOPPED", session.describe_training_job(job.name)["TrainingJobStatus"])
"""

CORE_SCRIPT = r"""
import sys
import boto3
from sagemaker_core.resources import TrainingJob
from sagemaker_core.shapes import AlgorithmSpecification, OutputDataConfig, ResourceConfig, StoppingCondition

epochs, failing = sys.argv[1], sys.argv[2]
boto3.client("s3").create_bucket(Bucket="core")


def create(name, image, **env):
    return TrainingJob.create(
        training_job_name=name,
        role_arn="arn:aws:iam::123456789012:role/SageMakerRole",
        algorithm_specification=AlgorithmSpecification(training_image=image, training_input_mode="File"),
        output_data_config=OutputDataConfig(s3_output_path="s3://core/out"),
        resource_config=ResourceConfig(instance_type="ml.m5.large", instance_count=1, volume_size_in_gb=1),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=300),
        environment=env,
    )


job = create("core-fit", epochs, EPOCHS="2")
job.wait(logs=True)
print("STATUS", job.training_job_status, job.model_artifacts.s3_model_artifacts)
failed = create("core-fails", failing)
try:
    failed.wait()
except Exception as exc:
    print("FAILURE", type(exc).__name__, exc)
stopped = create("core-stop", epochs, EPOCHS="300")
while stopped.secondary_status != "Training":
    stopped.refresh()
# sagemaker-core 1.0's TrainingJob.stop() reads a client attribute its SageMakerClient lacks: stop as boto3 does
boto3.client("sagemaker").stop_training_job(TrainingJobName="core-stop")
stopped.wait()
print("STOPPED", stopped.training_job_status)
"""

SDK_TEST = r"""
import os
import subprocess
import sys


# The user's script (env var `source`) run with the fixture's env() and the SDK on its path; it must exit 0.
def run_script(sagemaker_api, path, source, **extra_env):
    path.write_text(os.environ[source])
    env = {**sagemaker_api.env(), **extra_env}
    if os.environ.get("SDK_PATH"):
        env["PYTHONPATH"] = os.environ["SDK_PATH"]
    done = subprocess.run(
        [sys.executable, str(path), os.environ["EPOCHS_IMAGE"], os.environ["FAILING_IMAGE"]],
        env=env, capture_output=True, text=True, timeout=400,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_sdk_v2_estimator_fit(sagemaker_api, tmp_path):
    script = tmp_path / "train_on_sagemaker.py"
    done = run_script(sagemaker_api, script, "SDK_SCRIPT", SAGEMAKER_SUPPRESS_V2_WARNING="1")
    out = done.stdout
    assert "MODEL_DATA s3://sagemaker-us-east-1-123456789012/sdk-fit/output/model.tar.gz" in out
    assert "epoch 2" in out and "trained 2 epochs" in out  # fit(logs=True) streamed the container's log
    assert "Completed - Training job completed" in out
    assert "FAILURE Error for Training job sdk-fails: Failed. Reason: AlgorithmError: ValueError: loss diverged" in out
    assert "STOPPED Stopped" in out
    assert "telemetry" not in done.stderr.lower() or "Request exception" not in done.stderr
    assert sagemaker_api.result("sdk-stop", timeout=60).logs_after_sigterm


def test_sagemaker_core_training_job(sagemaker_api, tmp_path):
    done = run_script(sagemaker_api, tmp_path / "core_job.py", "CORE_SCRIPT")
    assert "STATUS Completed s3://core/out/core-fit/output/model.tar.gz" in done.stdout
    assert "trained 2 epochs" in done.stdout + done.stderr  # wait(logs=True) streamed the container's log
    assert "loss diverged" in done.stdout.split("FAILURE", 1)[1]
    assert "STOPPED Stopped" in done.stdout
"""


@pytest.fixture(scope="module")
def epochs_image(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "epochs")


def _sdk_missing() -> str | None:
    env = {**os.environ, **({"PYTHONPATH": SDK_PATH} if SDK_PATH else {})}
    found = subprocess.run([sys.executable, "-c", "import sagemaker"], env=env, capture_output=True, check=False)
    if found.returncode == 0:
        return None
    return "the SageMaker Python SDK v2 is not installed: pip install 'pytest-sagemaker-contract[sdk]'"


def test_boto3_and_the_aws_cli_through_the_fixture(
    pytester: pytest.Pytester, epochs_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPOCHS_IMAGE", epochs_image)
    monkeypatch.setenv("AWS_CLI", shutil.which("aws") or "")
    for name in [k for k in os.environ if k.startswith("AWS_") and k != "AWS_CLI"]:
        monkeypatch.delenv(name)
    pytester.makepyfile(test_user=USER_TESTS, training_requests=REQUESTS.read_text())
    result = run_suite(pytester, "-rs", "--sm-grace", "20")
    if shutil.which("aws") is None:
        result.assert_outcomes(passed=1, skipped=1)
    else:
        result.assert_outcomes(passed=2)


def test_sagemaker_sdk_v2_and_sagemaker_core(
    pytester: pytest.Pytester,
    epochs_image: str,
    example_image: Callable[[str | Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = _sdk_missing()
    if missing is not None:
        pytest.skip(missing)
    monkeypatch.setenv("EPOCHS_IMAGE", epochs_image)
    monkeypatch.setenv("FAILING_IMAGE", example_image(IMAGES / "fails-with-log"))
    monkeypatch.setenv("SDK_SCRIPT", SDK_SCRIPT)
    monkeypatch.setenv("CORE_SCRIPT", CORE_SCRIPT)
    monkeypatch.setenv("SDK_PATH", SDK_PATH)
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    pytester.makepyfile(test_sdk=SDK_TEST)
    result = run_suite(pytester, "--sm-grace", "20")
    result.assert_outcomes(passed=2)
