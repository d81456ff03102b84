"""Bad input, as users type it: each is one usage error line (exit 4), never a traceback or a silent run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

VALID_JOB = {
    "TrainingJobName": "j",
    "RoleArn": "arn:aws:iam::123456789012:role/r",
    "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
    "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
}

#: (arguments, a fragment of the one error line). "{tmp}" is the test's own directory.
CASES: list[tuple[list[str], str]] = [
    (["--sm-channel=train"], "--sm-channel 'train': expected NAME=VALUE, e.g. --sm-channel train=./data"),
    (["--sm-channel=train="], "--sm-channel train=: no path"),
    (["--sm-channel==."], "--sm-channel '=.': expected NAME=VALUE"),
    (["--sm-channel=train=/does/not/exist"], "/does/not/exist does not exist"),
    (["--sm-channel=bad/name=."], "channel names are 1-64 characters"),
    (["--sm-channel=" + "c" * 65 + "=."], "channel names are 1-64 characters"),
    (["--sm-job=/no/such/job.json"], "--sm-job: job file /no/such/job.json does not exist"),
    (["--sm-job={tmp}"], "is a directory; name the request's JSON file"),
    (["--sm-job={tmp}/latin1.json"], "is not UTF-8 text"),
    (["--sm-job={tmp}/broken.json"], "is not valid JSON"),
    (["--sm-job={tmp}/array.json"], "must hold a JSON object"),
    (["--sm-job={tmp}/norole.json"], "invalid CreateTrainingJob request"),
    (["--sm-job={tmp}/badtype.json"], "invalid CreateTrainingJob request"),
    (["--sm-instance-type=ml.m5.huge"], "not a SageMaker training instance type (e.g. ml.m5."),
    (["--sm-instance-type=gpu"], "not a SageMaker training instance type (e.g. ml.m5.large)"),
    (
        ["--sm-hyperparameter=epochs"],
        "--sm-hyperparameter 'epochs': expected KEY=VALUE, e.g. --sm-hyperparameter epochs=3",
    ),
    (["--sm-hyperparameter==3"], "expected KEY=VALUE"),
    (["--sm-sigterm-hyperparameter=x"], "--sm-sigterm-hyperparameter 'x': expected KEY=VALUE"),
    (["--sm-env=1BAD=x"], "Environment keys must match"),
    (["--sm-env=A-B=x"], "Environment keys must match"),
    (["--sm-env=NOVALUE"], "--sm-env 'NOVALUE': expected KEY=VALUE"),
    (["--sm-timeout=soon"], "--sm-timeout 'soon': expected a number of seconds"),
    (["--sm-timeout=nan"], "--sm-timeout nan: must be a positive, finite number of seconds"),
    (["--sm-timeout=inf"], "--sm-timeout inf: must be a positive, finite number of seconds"),
    (["--sm-timeout=-5"], "must be a positive, finite number of seconds"),
    (["--sm-timeout=0"], "must be a positive, finite number of seconds"),
    (["--sm-grace=nan"], "--sm-grace nan: must be a positive, finite number of seconds"),
    (["--sm-grace=inf"], "--sm-grace inf: must be a positive, finite number of seconds"),
    (["--sm-grace=-1"], "must be a positive, finite number of seconds"),
    (["--sm-stop-after=abc"], "--sm-stop-after 'abc': expected a number of seconds"),
    (["--sm-stop-after=1e308"], "at most 2419200 s (28 days"),
    (["--sm-stop-on-log=("], "--sm-stop-on-log '(': not a valid regular expression"),
    (["--sm-resume-log=["], "--sm-resume-log '[': not a valid regular expression"),
    (["--sm-input-modes=Files"], "expected a comma-separated subset of File,FastFile,Pipe"),
    (["--sm-input-modes=,"], "expected a comma-separated subset of File,FastFile,Pipe"),
    (["--sm-instance-count=0"], "--sm-instance-count 0: between 1 and 20 hosts"),
    (["--sm-instance-count=21"], "between 1 and 20 hosts"),
    (["--sm-instance-count=two"], "--sm-instance-count 'two': expected a whole number of hosts"),
    (["--sm-aws-region=mars"], "--sm-aws-region 'mars': expected a region like us-east-1, or none"),
    (["--sm-hyperparameter-value-limit=0"], "between 1 and 2500 characters"),
    (["--sm-hyperparameter-value-limit=3000"], "between 1 and 2500 characters"),
    (["--sm-hyperparameter-value-limit=lots"], "expected a whole number of characters"),
    (["--sm-gpus=many"], "--sm-gpus many: expected one of auto, all, none, devices"),
    (["--sm-gpu-probe="], "--sm-gpu-probe: empty command"),
    (["--sm-report=/nonexistent/dir/r.json"], "directory /nonexistent/dir does not exist; create it first"),
    (["--sm-report={tmp}"], "is a directory; name a file"),
    (["--sm-image="], "--sm-image: empty image name"),
    (["--sm-image=   "], "--sm-image: empty image name"),
]


@pytest.fixture
def bad_files(pytester: pytest.Pytester) -> Path:
    tmp = pytester.path
    (tmp / "latin1.json").write_bytes(b'{"TrainingJobName": "caf\xe9"}')
    (tmp / "broken.json").write_text('{"TrainingJobName": ')
    (tmp / "array.json").write_text("[]")
    (tmp / "norole.json").write_text(json.dumps({k: v for k, v in VALID_JOB.items() if k != "RoleArn"}))
    (tmp / "badtype.json").write_text(json.dumps({**VALID_JOB, "ResourceConfig": {"InstanceCount": "one"}}))
    return tmp


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("args", "fragment"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_usage_error_line(
    pytester: pytest.Pytester, bad_files: Path, args: list[str], fragment: str
) -> None:
    argv = [a.replace("{tmp}", str(bad_files)) for a in args]
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly", *argv)
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert fragment.replace("{tmp}", str(bad_files)) in errors[0]
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


def test_a_bad_value_in_the_ini_file_is_a_usage_error_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsm_timeout = nan\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("--sm-timeout nan: must be a positive, finite number" in line for line in result.errlines)


def test_sm_job_alone_checks_the_jobs_own_training_image(pytester: pytest.Pytester) -> None:
    job = pytester.path / "job.json"
    job.write_text(json.dumps(VALID_JOB))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--sm-job={job}", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"sagemaker-contract: sm_image=img:1 (AlgorithmSpecification.TrainingImage of {job}), sm_job=*",
            "*<ContractItem SM-RUN-DEFAULT>",
        ]
    )
