"""The public fixtures and markers, as a user's own test file uses them (through pytester, real engine)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from .conftest_helpers import ALL_CHECKS, IMAGES, REPO, auto_gives_gpus, host_gpu_support

USER_TESTS = """
import json
import pytest

pytestmark = pytest.mark.sagemaker_job(hyperparameters={"seconds": "30"})


def test_image_fixture_follows_the_option(sm_image):
    assert sm_image.startswith("sm-contract-test/")


def test_runs_with_channels_from_a_local_dir(training_job, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1")
    result = training_job(channels={"train": tmp_path / "data"}, environment={"PEERS": ""}).run()
    assert result.TrainingJobStatus == "Completed", result.FailureReason
    assert "DATA train/x.csv" in result.logs
    assert result.model_files == ["algo-1.txt"]
    assert result.exit_code == 0
    assert result.timeline.started <= result.timeline.exited
    assert result.describe()["TrainingJobStatus"] == "Completed"


def test_s3_fixture_seeds_and_inspects(training_job, sagemaker_s3):
    sagemaker_s3.create_bucket(Bucket="team")
    sagemaker_s3.put_object(Bucket="team", Key="in/a.csv", Body=b"1")
    result = training_job(channels={"train": "s3://team/in"}).run()
    assert "DATA train/a.csv" in result.logs
    key = result.ModelArtifacts["S3ModelArtifacts"].split("/", 3)[3]
    assert sagemaker_s3.head_object(Bucket="sagemaker-contract", Key=key)["ContentLength"] > 0


LOOP = "trap 'echo bye > /opt/ml/model/m; exit 0' TERM; echo up; while :; do sleep 1 & wait; done"


@pytest.mark.sagemaker_job(entrypoint=["/bin/sh", "-c", LOOP])
def test_start_stop_and_exec(training_job):
    with training_job().start() as job:
        assert job.wait_for_log("up", timeout=60)
        code, out = job.exec(["hostname"])
        assert code == 0 and out.strip().startswith("ip-10-0-"), out  # the instance's name, not algo-1 (§7)
        code, out = job.exec(["ping", "-c1", "-W2", "algo-1"])  # algo-1 resolves through the job's network
        assert code == 0, out
        job.stop(grace=30)
        result = job.wait(120)
    assert (result.TrainingJobStatus, result.SecondaryStatus) == ("Stopped", "Stopped")
    assert result.model_files == ["m"]


@pytest.mark.sagemaker_gpu
@pytest.mark.sagemaker_job(instance_type="ml.g5.xlarge")
def test_needs_a_gpu(training_job):
    # Skipped where no GPU can be given; where one can, the container must see it.
    result = training_job(entrypoint=["/bin/sh", "-c", "ls -l /dev/nvidia0"]).run()
    assert result.TrainingJobStatus == "Completed", result.logs
"""


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


def test_user_tests_with_fixtures_and_markers(
    pytester: pytest.Pytester, probe: str, no_leftovers: str, docker_client: docker.DockerClient
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-image={probe}", "--sm-no-suite", "-rs")
    gpus = host_gpu_support(docker_client)
    if auto_gives_gpus(gpus):  # a GPU host with the NVIDIA toolkit: the GPU test runs, and sees its GPU
        result.assert_outcomes(passed=5)
        return
    result.assert_outcomes(passed=4, skipped=1)
    skipped = "*sagemaker_gpu: ml.g5.xlarge has 1 GPU(s), none can be given here: *"
    result.stdout.fnmatch_lines([skipped + ("" if any(gpus.values()) else "GPU checks skipped")])


#: The suite's checks in suite order, less SM-SIG-* and SM-CKPT-* (deselected below).
XDIST_CHECKS = tuple(c for c in ALL_CHECKS if not c.startswith(("SM-SIG-", "SM-CKPT-")))


def test_xdist_runs_suite_and_user_tests_and_merges_the_report(
    pytester: pytest.Pytester, probe: str, no_leftovers: str
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    report = pytester.path / "report.json"
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        f"--sm-image={probe}",
        f"--sm-report={report}",
        f"--junitxml={junit}",
        "--sm-stop-after=1",
        "--sm-grace=5",
        "-k",
        "not SM-SIG and not SM-CKPT",
        timeout=600,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert result.stdout.str().count("SageMaker training contract") == 1
    data = json.loads(report.read_text())
    assert len(data["images"]) == 1
    ids = [c["id"] for c in data["images"][0]["checks"]]
    # Each check exactly once. The JSON keeps the order the workers finished in, which depends on load;
    # the table sorts them into suite order, whichever worker ran what and however long it took.
    assert sorted(ids) == sorted(XDIST_CHECKS)
    result.stdout.fnmatch_lines(["*SageMaker training contract*", *(f"  {c} *" for c in XDIST_CHECKS)])
    names = {case.get("name") for case in ET.parse(junit).iter("testcase")}
    assert {"SM-RUN-DEFAULT", "test_runs_with_channels_from_a_local_dir"} <= names


def test_example_user_tests_run_against_the_kmeans_image(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image("kmeans")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", str(REPO / "examples" / "user-tests"), f"--sm-image={image}", "--sm-no-suite"
    )
    result.assert_outcomes(passed=3)


REGION_TEST = """
def test_region(training_job):
    result = training_job(entrypoint=["/bin/sh", "-c", "echo REGION=${AWS_REGION:-unset} ARN=$TRAINING_JOB_ARN"]).run()
    print(result.logs)
    assert result.TrainingJobStatus == "Completed"
"""


@pytest.mark.parametrize(
    ("option", "seen"),
    [
        ("--sm-aws-region=eu-west-1", "REGION=eu-west-1 ARN=arn:aws:sagemaker:eu-west-1:123456789012:training-job/"),
        ("--sm-aws-region=none", "REGION=unset ARN=arn:aws:sagemaker:us-east-1:123456789012:training-job/"),
    ],
)
def test_aws_region_is_configurable(pytester: pytest.Pytester, probe: str, option: str, seen: str) -> None:
    pytester.makepyfile(test_region=REGION_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--sm-image={probe}", "--sm-no-suite", "-s", option
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{seen}*"])
