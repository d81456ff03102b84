"""The plugin's options, markers and fixtures where no container runs: usage errors, help, no image.

pytest in a subprocess (pytester) as a user runs it; none of these reach the Docker engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..helpers import KMEANS, run_suite

# -- the suite's options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sm-channel=train"], "*--sm-channel 'train': expected NAME=VALUE*"),
        (
            ["--sm-channel=train=/does/not/exist"],
            "*--sm-channel train=/does/not/exist: /does/not/exist does not exist*",
        ),
        (["--sm-job=/no/such/job.json"], "*--sm-job: job file /no/such/job.json does not exist*"),
        (["--sm-instance-type=ml.m5.huge"], "*--sm-instance-type ml.m5.huge: not a SageMaker training instance type*"),
        (["--sm-hyperparameter=epochs"], "*--sm-hyperparameter 'epochs': expected KEY=VALUE*"),
        (["--sm-env=1BAD=x"], "*--sm-env 1BAD=...: Environment keys must match*"),
        (["--sm-timeout=soon"], "*--sm-timeout 'soon': expected a number of seconds*"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = run_suite(pytester, "--sm-image=x", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_invalid_job_file_names_field_and_limit(pytester: pytest.Pytester) -> None:
    job = json.loads((KMEANS / "job.json").read_text())
    job["TrainingJobName"] = "bad_name!"
    path = pytester.path / "job.json"
    path.write_text(json.dumps(job))
    result = run_suite(pytester, "--sm-image=x", f"--sm-job={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*TrainingJobName: 'bad_name!' does not match the API pattern*"])


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_job_file_that_never_ends_is_refused_in_seconds(pytester: pytest.Pytester, kind: str) -> None:
    """A FIFO used to block the read forever, /dev/zero to grow memory until killed (issue 22, item 5)."""
    path = Path(kind)
    if kind == "fifo":
        path = pytester.path / "job.json"
        os.mkfifo(path)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-job={path}", timeout=60)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --sm-job: job file {path} is a * not a regular file; name the request's*"])
    assert "Traceback" not in result.stderr.str()


def test_a_channel_of_a_missing_user_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--sm-image=x", "--sm-channel=train=~nosuchuser/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sm-channel train=~nosuchuser/x: cannot expand ~nosuchuser (*)"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_the_report_never_overwrites_the_job_file(pytester: pytest.Pytester) -> None:
    path = pytester.path / "job.json"
    text = (KMEANS / "job.json").read_text()
    path.write_text(text)
    result = run_suite(pytester, "--sm-image=x", f"--sm-job={path}", f"--sm-report={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --sm-report {path}: is the --sm-job request file; the report would*"])
    assert path.read_text() == text


def test_no_suite_without_image(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = run_suite(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*sagemaker-contract: no --sm-image given*"])


# -- markers and fixtures ----------------------------------------------------------------------------


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


# -- GPU options -------------------------------------------------------------------------------------


def test_bad_gpu_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sm-gpus=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sm-gpus cuda: expected one of auto, all, none, devices*"])
