"""Bad input, as users type it: each is one usage error line (exit 4), never a traceback or a silent run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_sagemaker_contract.settings import OPTIONS

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
    (["--sm-channel=bad/name=."], "'bad/name' is not a channel name: 1-64 characters matching the API pattern"),
    (["--sm-channel=" + "c" * 65 + "=."], "is not a channel name: 1-64 characters"),
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
    (
        ["--sm-hyperparameter=epochs=3", "--sm-hyperparameter=epochs=5"],
        "--sm-hyperparameter epochs=3 and --sm-hyperparameter epochs=5: 'epochs' given twice with different values",
    ),
    (["--sm-env=A=1", "--sm-env=A=2"], "--sm-env A=1 and --sm-env A=2: 'A' given twice"),
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
    # Inputs that hung or crashed the run (issue 22, item 5).
    (["--sm-job={tmp}/fifo"], "{tmp}/fifo is a FIFO (named pipe), not a regular file"),
    (["--sm-job=/dev/zero"], "job file /dev/zero is a character device, not a regular file"),
    (["--sm-job={tmp}/big.json"], "is larger than 1024 KiB, the most a job file may hold"),
    (["--sm-job={tmp}/deep.json"], "nests objects and lists deeper than 32 levels"),
    (["--sm-job={tmp}/deep900.json"], "nests objects and lists deeper than 32 levels"),
    (["--sm-job={tmp}/digits.json"], "is not a valid request: Exceeds the limit (4300 digits)"),
    (["--sm-channel=train=~nosuchuser/x"], "--sm-channel train=~nosuchuser/x: cannot expand ~nosuchuser"),
    (["--sm-report=/proc/sm-report.json"], "--sm-report /proc/sm-report.json: cannot create files in /proc"),
    (["--sm-html={tmp}"], "--sm-html {tmp}: is a directory; name a file"),
    (["--sm-html={tmp}/job.json", "--sm-job={tmp}/job.json"], "--sm-html {tmp}/job.json: is the --sm-job request file"),
    (["--sm-parallel=0"], "--sm-parallel 0: between 1 and 64 checks"),
    (["--sm-data-path=nfs"], "--sm-data-path nfs: expected auto, bind or engine"),
    (["--sm-resources=maybe"], "--sm-resources maybe: expected on or off"),
    (["--sm-report={tmp}/latin1.json/r.json"], "latin1.json is not a directory"),
    (["--sm-report={tmp}/fifo"], "--sm-report {tmp}/fifo: is a FIFO (named pipe); name a regular file"),
    (["--sm-report={tmp}/job.json", "--sm-job={tmp}/job.json"], "is the --sm-job request file; the report would"),
    (["--sm-report={tmp}/link.json", "--sm-job={tmp}/job.json"], "is the --sm-job request file"),
    (["--sm-report={tmp}/data/r.json", "--sm-channel=train={tmp}/data"], "is inside channel 'train'"),
    (["--sm-report={tmp}/datalink/r.json", "--sm-channel=t={tmp}/data/"], "is inside channel 't'"),
    (["--sm-report={tmp}/one.csv", "--sm-channel=t={tmp}/one.csv"], "is channel 't''s file; the report would"),
    (["--sm-job={tmp}/hosts3.json", "--sm-max-hosts=2"], "ResourceConfig.InstanceCount 3 hosts: more than one"),
    (["--sm-job={tmp}/hosts3.json", "--sm-max-hosts=2"], "(--sm-max-hosts 2)"),
    (["--sm-job={tmp}/groups.json", "--sm-max-hosts=2"], "ResourceConfig.InstanceGroups add up to 3 hosts"),
    (["--sm-job={tmp}/hosts_many.json"], "this machine ("),
    (["--sm-job={tmp}/hosts_many.json"], "raise the bound with --sm-max-hosts N"),
    (["--sm-instance-count=3", "--sm-max-hosts=2"], "--sm-instance-count 3 hosts: more than one job may start"),
    (["--sm-job={tmp}/hosts3.json", "--sm-instance-count=2", "--sm-max-hosts=2"], "InstanceCount 3 hosts: more"),
    (["--sm-max-hosts=0"], "--sm-max-hosts 0: between 1 and 1000 hosts"),
    # Inputs that were silently accepted (issue 22, item 6).
    (["--sm-channel=train={tmp}/fifo"], "{tmp}/fifo is a FIFO (named pipe); a channel is a regular file or a dir"),
    (["--sm-channel=train=/dev/zero"], "/dev/zero is a character device; a channel is a regular file"),
    (["--sm-channel=train={tmp}/sock"], "is a socket; a channel is a regular file or a directory"),
    (["--sm-channel=.={tmp}/data"], "'.' would be /opt/ml/input/data/. itself"),
    (["--sm-channel=..={tmp}/data"], "'..' would be /opt/ml/input/data/.. itself"),
    (
        ["--sm-channel=a={tmp}/data", "--sm-channel=a={tmp}/one.csv"],
        "--sm-channel a={tmp}/data and --sm-channel a={tmp}/one.csv: channel 'a' given twice",
    ),
    (["--sm-job={tmp}/dupchannels.json"], "InputDataConfig[0] and InputDataConfig[1] are both channel 'train'"),
    (["--sm-job={tmp}/dotchannel.json"], "InputDataConfig[0].ChannelName: '..' would be /opt/ml/input/data/.."),
    (["--sm-job={tmp}/ckpt_root.json"], "CheckpointConfig.LocalPath: '/' would replace the container's whole"),
    (["--sm-job={tmp}/ckpt_model.json"], "CheckpointConfig.LocalPath: '/opt/ml/model' is inside /opt/ml/model"),
    (["--sm-job={tmp}/ckpt_input.json"], "'/opt/ml/input/data' is inside /opt/ml/input"),
    (["--sm-job={tmp}/ckpt_relative.json"], "CheckpointConfig.LocalPath: 'checkpoints' is a relative path"),
    (["--sm-job={tmp}/runtime_1e30.json"], "MaxRuntimeInSeconds: expected an integer, got 1e+30"),
    (["--sm-job={tmp}/runtime_float.json"], "MaxRuntimeInSeconds: expected an integer, got 60.5"),
    (["--sm-job={tmp}/runtime_long.json"], "MaxRuntimeInSeconds: 1000000000000 is above the limit 2419200 (28 days)"),
    (
        ["--sm-job={tmp}/spot_wait.json"],
        "MaxWaitTimeInSeconds: 3600; with EnableManagedSpotTraining it must be present and >= MaxRuntimeInSeconds",
    ),
    (["--sm-job={tmp}/hp_many.json"], "HyperParameters: 101 entries, the API maximum is 100"),
    (
        [f"--sm-hyperparameter=k{i}=v" for i in range(101)],
        "--sm-hyperparameter: invalid CreateTrainingJob request: HyperParameters: 101 entries, the API maximum",
    ),
    (["--sm-hyperparameter=k=" + "v" * 2501], "HyperParameters['k']: 2501 characters, the API maximum is 2500"),
    (["--sm-hyperparameter=" + "k" * 257 + "=v"], "257 characters, the API maximum is 256"),
    (["--sm-sigterm-hyperparameter=k=" + "v" * 2501], "--sm-sigterm-hyperparameter: invalid CreateTrainingJob"),
    (
        ["--sm-hyperparameter=k=" + "v" * 300, "--sm-hyperparameter-value-limit=256"],
        "HyperParameters['k']: 300 characters, the limit in use is 256",
    ),
    (
        ["--sm-job={tmp}/hp_100.json", "--sm-hyperparameter=extra=1"],
        "--sm-hyperparameter and --sm-job: invalid CreateTrainingJob request: HyperParameters: 101 entries",
    ),
    (["--sm-env=A=" + "v" * 513], "--sm-env: invalid CreateTrainingJob request: Environment['A']: 513 characters"),
]


def _job(**changes: object) -> str:
    """VALID_JOB with top-level sections replaced (a section's dict is merged into the valid one)."""
    job = json.loads(json.dumps(VALID_JOB))
    for key, value in changes.items():
        job[key] = {**job[key], **value} if isinstance(value, dict) and key in job else value
    return json.dumps(job)


def _channel(name: str) -> dict[str, object]:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/d"}}}


@pytest.fixture
def bad_files(pytester: pytest.Pytester) -> Iterator[Path]:
    tmp = pytester.path
    (tmp / "latin1.json").write_bytes(b'{"TrainingJobName": "caf\xe9"}')
    (tmp / "broken.json").write_text('{"TrainingJobName": ')
    (tmp / "array.json").write_text("[]")
    (tmp / "norole.json").write_text(json.dumps({k: v for k, v in VALID_JOB.items() if k != "RoleArn"}))
    (tmp / "badtype.json").write_text(json.dumps({**VALID_JOB, "ResourceConfig": {"InstanceCount": "one"}}))
    os.mkfifo(tmp / "fifo")
    short = Path(tempfile.mkdtemp(prefix="sm-"))  # a socket's path must fit in 108 bytes
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(short / "s"))
    (tmp / "sock").symlink_to(short / "s")
    (tmp / "big.json").write_text(json.dumps(VALID_JOB) + " " * (1 << 20))
    (tmp / "deep.json").write_text('{"HyperParameters": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (tmp / "deep900.json").write_text('{"Tags": ' + "[" * 900 + "]" * 900 + "}")
    (tmp / "digits.json").write_text('{"StoppingCondition": {"MaxRuntimeInSeconds": 1' + "0" * 5000 + "}}")
    (tmp / "job.json").write_text(json.dumps(VALID_JOB))
    (tmp / "link.json").symlink_to(tmp / "job.json")
    (tmp / "data").mkdir()
    (tmp / "datalink").symlink_to(tmp / "data")
    (tmp / "data" / "f.csv").write_text("1,2\n")
    (tmp / "one.csv").write_text("1,2\n")
    groups = [
        {"InstanceGroupName": n, "InstanceType": "ml.m5.large", "InstanceCount": c} for n, c in (("a", 1), ("b", 2))
    ]
    files = {
        "hosts3.json": _job(ResourceConfig={"InstanceCount": 3}),
        "hosts_many.json": _job(ResourceConfig={"InstanceCount": 100_000}),
        "groups.json": json.dumps({**VALID_JOB, "ResourceConfig": {"InstanceGroups": groups, "VolumeSizeInGB": 10}}),
        "dupchannels.json": _job(InputDataConfig=[_channel("train"), _channel("train")]),
        "dotchannel.json": _job(InputDataConfig=[_channel("..")]),
        "ckpt_root.json": _job(CheckpointConfig={"S3Uri": "s3://b/c", "LocalPath": "/"}),
        "ckpt_model.json": _job(CheckpointConfig={"S3Uri": "s3://b/c", "LocalPath": "/opt/ml/model"}),
        "ckpt_input.json": _job(CheckpointConfig={"S3Uri": "s3://b/c", "LocalPath": "/opt/ml/input/data"}),
        "ckpt_relative.json": _job(CheckpointConfig={"S3Uri": "s3://b/c", "LocalPath": "checkpoints"}),
        "runtime_1e30.json": _job(StoppingCondition={"MaxRuntimeInSeconds": 1e30}),
        "runtime_float.json": _job(StoppingCondition={"MaxRuntimeInSeconds": 60.5}),
        "runtime_long.json": _job(StoppingCondition={"MaxRuntimeInSeconds": 10**12}),
        "spot_wait.json": _job(
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 3600},
        ),
        "hp_many.json": _job(HyperParameters={f"k{i}": "v" for i in range(101)}),
        "hp_100.json": _job(HyperParameters={f"k{i}": "v" for i in range(100)}),
    }
    for name, text in files.items():
        (tmp / name).write_text(text)
    yield tmp
    server.close()
    shutil.rmtree(short)


#: Options every value of which is valid: there is no bad input to give them.
ANY_VALUE = {"sm_expect_model"}


def test_every_option_that_takes_a_value_has_a_bad_input_case() -> None:
    """A new option comes with at least one bad value in the table (flags take no value: nothing to refuse)."""
    given = {arg.split("=", 1)[0] for args, _ in CASES for arg in args}
    missing = [o.flag for o in OPTIONS if o.kind != "bool" and o.name not in ANY_VALUE and o.flag not in given]
    assert missing == []


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
