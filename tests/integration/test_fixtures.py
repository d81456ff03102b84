"""The public fixtures and markers, as a user's own test file uses them (through pytester, real engine)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "tests" / "images"

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
        assert job.wait_for_log("up", timeout=20)
        code, out = job.exec(["hostname"])
        assert (code, out.strip()) == (0, "algo-1")
        job.stop(grace=5)
        result = job.wait(30)
    assert (result.TrainingJobStatus, result.SecondaryStatus) == ("Stopped", "Stopped")
    assert result.model_files == ["m"]


@pytest.mark.sagemaker_gpu
@pytest.mark.sagemaker_job(instance_type="ml.g5.xlarge")
def test_needs_a_gpu(training_job):
    raise AssertionError("must be skipped on a machine without GPUs")
"""


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


def test_user_tests_with_fixtures_and_markers(pytester: pytest.Pytester, probe: str, no_leftovers: str) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-image={probe}", "--sm-no-suite", "-rs")
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(
        ["*sagemaker_gpu: ml.g5.xlarge has 1 GPU(s), none can be given here: *GPU checks skipped"]
    )


def test_marker_typo_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_typo="""
import pytest

@pytest.mark.sagemaker_job(hyperparameter={"epochs": "1"})
def test_x(training_job):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sm-image=x", "--sm-no-suite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.sagemaker_job got unknown keyword 'hyperparameter'; valid: *"])
    assert "Traceback" not in result.stderr.str()


def test_markers_are_registered_with_their_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.sagemaker_job(image, job, name, hyperparameters, *", "@pytest.mark.sagemaker_gpu:*"]
    )


def test_sm_image_skips_without_an_image(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(sm_image):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no image under test: pass --sm-image IMAGE*"])


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
        "--sm-env=SETTLE=3",
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
    assert len(ids) == len(set(ids)) == 15
    assert ids[0] == "SM-IMG-EXEC-FORM"
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
