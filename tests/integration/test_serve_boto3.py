"""`sm-contract serve` with real boto3 clients: the SageMaker training API, S3, CloudWatch Logs and STS as AWS
answers them, backed by real containers; the server process is started, signalled and checked as a user would."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .conftest_helpers import IMAGES
from .training_requests import training_request

EXPORTED = (
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_LOGS",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "SAGEMAKER_ADMIN_CONFIG_OVERRIDE",
)

GROUP = "/aws/sagemaker/TrainingJobs"


class Served:
    def __init__(self, proc: subprocess.Popen[str], exports: dict[str, str], lines: list[str], run_id: str) -> None:
        self.proc = proc
        self.exports = exports
        self.lines = lines
        self.run_id = run_id
        self.stderr: list[str] = []

    def session(self, **overrides: str) -> Any:
        env = {**self.exports, **overrides}
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

    def client(self, name: str, **overrides: str) -> Any:
        url = self.exports["AWS_ENDPOINT_URL_" + name.upper()]
        return self.session(**overrides).client(name, endpoint_url=url, config=Config(retries={"max_attempts": 1}))


def _start_server(extra: list[str] | None = None) -> Served:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_sagemaker_contract", "serve", "--grace", "20", *(extra or [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines = [proc.stdout.readline().rstrip("\n") for _ in EXPORTED]
    banner = proc.stderr.readline()
    found = re.search(r"\(run (serve-[0-9a-f]+)\)", banner)
    assert found is not None, f"no banner on stderr: {banner!r} {lines}"
    exports = {}
    for line in lines:
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = value
    served = Served(proc, exports, lines, found.group(1))
    # Drained, so a full pipe never blocks the server; kept for the messages of failing tests.
    threading.Thread(target=lambda: served.stderr.extend(proc.stderr or ()), daemon=True).start()
    threading.Thread(target=lambda: served.stderr.extend(proc.stdout or ()), daemon=True).start()
    return served


@pytest.fixture(scope="module")
def served(docker_client: docker.DockerClient) -> Iterator[Served]:
    server = _start_server()
    yield server
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=120) == 0
    left = docker_client.api.containers(all=True, filters={"label": f"sm-contract.run={server.run_id}"})
    assert left == [], "sm-contract serve left containers behind after SIGTERM"


@pytest.fixture(scope="module")
def images(example_image: Callable[[str | Path], str]) -> dict[str, str]:
    return {name: example_image(IMAGES / name) for name in ("epochs", "fails-with-log")}


@pytest.fixture(scope="module")
def bucket(served: Served) -> str:
    served.client("s3").create_bucket(Bucket="team")
    return "team"


def _request(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return training_request(name, image, "s3://team/out", **extra)


def _until(sm: Any, name: str, done: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
    """Poll DescribeTrainingJob, as the SDKs do, until `done` holds."""
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        if done(described) or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def _ended(d: Mapping[str, Any]) -> bool:
    return d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped")


def _log_messages(served: Served, name: str) -> tuple[list[str], list[str]]:
    logs = served.client("logs")
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    names = [s["logStreamName"] for s in streams]
    if not names:
        return [], []
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=names[0], startFromHead=True)["events"]
    return names, [e["message"] for e in events]


def test_exports_come_first_one_per_line(served: Served) -> None:
    assert [line.split("=")[0] for line in served.lines] == [f"export {n}" for n in EXPORTED]
    assert served.exports["AWS_ENDPOINT_URL_SAGEMAKER"].startswith("http://127.0.0.1:")
    assert served.exports["AWS_DEFAULT_REGION"] == "us-east-1"
    identity = served.client("sts").get_caller_identity()
    assert identity["Account"] == "123456789012"


def test_create_describe_to_completion(served: Served, images: dict[str, str], bucket: str) -> None:
    sm = served.client("sagemaker")
    request = _request(
        "serve-completes",
        images["epochs"],
        Environment={"EPOCHS": "2"},
        HyperParameters={"lr": "0.1"},
        CheckpointConfig={"S3Uri": "s3://team/ckpt"},
    )
    request["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "epoch", "Regex": r"epoch ([0-9]+)"}]
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:training-job/serve-completes"
    first = sm.describe_training_job(TrainingJobName="serve-completes")
    assert first["TrainingJobStatus"] == "InProgress"
    d = _until(sm, "serve-completes", _ended)
    assert (d["TrainingJobStatus"], d["SecondaryStatus"]) == ("Completed", "Completed"), d.get("FailureReason")
    assert "FailureReason" not in d
    uri = d["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == "s3://team/out/serve-completes/output/model.tar.gz"
    head = served.client("s3").head_object(Bucket=bucket, Key="out/serve-completes/output/model.tar.gz")
    assert head["ContentLength"] > 0
    assert [m["MetricName"] for m in d["FinalMetricDataList"]] == ["epoch"]
    assert d["FinalMetricDataList"][0]["Value"] == 2.0
    statuses = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert d["CreationTime"] <= d["TrainingStartTime"] <= d["TrainingEndTime"] <= d["LastModifiedTime"]
    assert d["TrainingTimeInSeconds"] >= 1
    for echoed in ("HyperParameters", "Environment", "CheckpointConfig", "StoppingCondition", "ResourceConfig"):
        assert d[echoed] == request[echoed], echoed
    assert d["AlgorithmSpecification"]["MetricDefinitions"] == request["AlgorithmSpecification"]["MetricDefinitions"]
    streams, messages = _log_messages(served, "serve-completes")
    assert len(streams) == 1
    assert re.fullmatch(r"serve-completes/algo-1-\d{10}", streams[0])
    assert messages == ["epoch 1", "epoch 2", "trained 2 epochs"]


def test_one_stream_per_host(served: Served, images: dict[str, str], bucket: str) -> None:
    sm = served.client("sagemaker")
    resource = {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}
    sm.create_training_job(
        **_request("serve-two", images["epochs"], Environment={"EPOCHS": "1"}, ResourceConfig=resource)
    )
    assert _until(sm, "serve-two", _ended)["TrainingJobStatus"] == "Completed"
    logs = served.client("logs")
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="serve-two/")["logStreams"]
    names = [s["logStreamName"] for s in streams]
    assert [re.sub(r"-\d+$", "", n) for n in names] == ["serve-two/algo-1", "serve-two/algo-2"]
    for name in names:
        events = logs.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True)["events"]
        assert [e["message"] for e in events] == ["epoch 1", "trained 1 epochs"], name


def test_aws_error_shapes(served: Served, images: dict[str, str], bucket: str) -> None:
    sm = served.client("sagemaker")
    with pytest.raises(ClientError) as bad:
        sm.create_training_job(**_request("bad name!", images["epochs"]))
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "TrainingJobName" in bad.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as runtime:
        sm.create_training_job(
            **_request("too-long", images["epochs"], StoppingCondition={"MaxRuntimeInSeconds": 30 * 86400})
        )
    assert runtime.value.response["Error"]["Code"] == "ValidationException"
    assert "28 days" in runtime.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as stop_missing:
        sm.stop_training_job(TrainingJobName="no-such-job")
    assert stop_missing.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as page:
        sm.list_training_jobs(MaxResults=101)
    assert page.value.response["Error"]["Code"] == "ValidationException"
    assert "MaxResults" in page.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as unserved:
        sm.list_endpoints()
    assert unserved.value.response["Error"]["Code"] == "UnknownOperationException"

    sm.create_training_job(**_request("serve-dup", images["fails-with-log"]))
    with pytest.raises(ClientError) as dup:
        sm.create_training_job(**_request("serve-dup", images["fails-with-log"]))
    assert dup.value.response["Error"]["Code"] == "ResourceInUse"
    assert "serve-dup" in dup.value.response["Error"]["Message"]
    d = _until(sm, "serve-dup", _ended)
    assert d["TrainingJobStatus"] == "Failed"
    assert "loss diverged" in d["FailureReason"]
    with pytest.raises(ClientError) as ended:
        sm.stop_training_job(TrainingJobName="serve-dup")
    assert ended.value.response["Error"]["Code"] == "ValidationException"
    assert "Failed" in ended.value.response["Error"]["Message"]


def test_missing_image_fails_the_job_with_a_client_error(served: Served, bucket: str) -> None:
    sm = served.client("sagemaker")
    sm.create_training_job(**_request("serve-no-image", "sm-contract-test/no-such-image:never"))
    d = _until(sm, "serve-no-image", _ended)
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("ClientError: ")
    assert "no-such-image" in d["FailureReason"]


def test_stop_is_sigterm_then_the_model_is_saved(served: Served, images: dict[str, str], bucket: str) -> None:
    sm = served.client("sagemaker")
    sm.create_training_job(**_request("serve-stops", images["epochs"], Environment={"EPOCHS": "120"}))
    deadline = time.monotonic() + 60
    while "epoch 1" not in _log_messages(served, "serve-stops")[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sm.describe_training_job(TrainingJobName="serve-stops")["SecondaryStatus"] == "Training"
    sm.stop_training_job(TrainingJobName="serve-stops")
    stopping = sm.describe_training_job(TrainingJobName="serve-stops")
    assert stopping["TrainingJobStatus"] in ("Stopping", "Stopped")
    d = _until(sm, "serve-stops", _ended)
    assert (d["TrainingJobStatus"], d["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]][-3:] == ["Stopping", "Uploading", "Stopped"]
    stopped_at = d["SecondaryStatusTransitions"][-3]["StartTime"]
    assert (d["TrainingEndTime"] - stopped_at).total_seconds() < 20, "ended by SIGTERM, within the grace"
    assert served.client("s3").head_object(Bucket=bucket, Key="out/serve-stops/output/model.tar.gz")
    assert "saved" in _log_messages(served, "serve-stops")[1]


def test_list_filters_and_pages(served: Served, bucket: str) -> None:
    sm = served.client("sagemaker")
    for i in range(3):
        sm.create_training_job(**_request(f"listed-{i}", "sm-contract-test/no-such-image:never"))
    for i in range(3):
        _until(sm, f"listed-{i}", _ended)
    page = sm.list_training_jobs(NameContains="listed-", SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] == ["listed-0", "listed-1"]
    rest = sm.list_training_jobs(
        NameContains="listed-", SortBy="Name", SortOrder="Ascending", MaxResults=2, NextToken=page["NextToken"]
    )
    assert [s["TrainingJobName"] for s in rest["TrainingJobSummaries"]] == ["listed-2"]
    assert "NextToken" not in rest
    assert {s["TrainingJobStatus"] for s in rest["TrainingJobSummaries"]} == {"Failed"}
    assert sm.list_training_jobs(NameContains="listed-", StatusEquals="Completed")["TrainingJobSummaries"] == []
    newest_first = sm.list_training_jobs(NameContains="listed-")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in newest_first] == ["listed-2", "listed-1", "listed-0"]
    earlier = newest_first[-1]["CreationTime"] - datetime.timedelta(seconds=2)
    assert len(sm.list_training_jobs(NameContains="listed-", CreationTimeAfter=earlier)["TrainingJobSummaries"]) == 3
    assert sm.list_training_jobs(NameContains="listed-", CreationTimeBefore=earlier)["TrainingJobSummaries"] == []
    with pytest.raises(ClientError) as other_filters:
        sm.list_training_jobs(NameContains="other", NextToken=page["NextToken"])
    assert other_filters.value.response["Error"]["Code"] == "ValidationException"
    paginated = sm.get_paginator("list_training_jobs").paginate(
        NameContains="listed-", PaginationConfig={"PageSize": 1}
    )
    assert sum(len(p["TrainingJobSummaries"]) for p in paginated) == 3


def test_only_the_session_key_is_served(served: Served) -> None:
    wrong_secret = served.client("sagemaker", AWS_SECRET_ACCESS_KEY="not-the-secret")
    with pytest.raises(ClientError) as mismatch:
        wrong_secret.list_training_jobs()
    assert mismatch.value.response["Error"]["Code"] == "InvalidSignatureException"
    wrong_key = served.client("logs", AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE")
    with pytest.raises(ClientError) as unknown:
        wrong_key.describe_log_groups()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as sts:
        served.client("sts", AWS_SECRET_ACCESS_KEY="not-the-secret").get_caller_identity()
    assert sts.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    status, body = _raw_post(served, json.dumps({}).encode(), {"X-Amz-Target": "SageMaker.ListTrainingJobs"})
    assert status == 400
    assert json.loads(body)["__type"] == "MissingAuthenticationTokenException"


def _raw_post(served: Served, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    host, port = served.exports["AWS_ENDPOINT_URL_SAGEMAKER"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        start = f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        sock.sendall(f"{start}{head}\r\n".encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_survives_a_client_gone_mid_request_and_50_concurrent_describes(
    served: Served, images: dict[str, str], bucket: str
) -> None:
    host, port = served.exports["AWS_ENDPOINT_URL_SAGEMAKER"].removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-Amz-Target: SageMaker.X\r\n\r\n{")
    sm = served.client("sagemaker")
    sm.create_training_job(**_request("serve-busy", images["epochs"], Environment={"EPOCHS": "2"}))
    session = served.session()  # one session, 50 clients: each with its own connection pool
    clients = [
        session.client("sagemaker", endpoint_url=served.exports["AWS_ENDPOINT_URL_SAGEMAKER"]) for _ in range(50)
    ]
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(
            pool.map(lambda c: c.describe_training_job(TrainingJobName="serve-busy")["TrainingJobStatus"], clients)
        )
    assert len(statuses) == 50
    assert set(statuses) <= {"InProgress", "Completed"}
    assert _until(sm, "serve-busy", _ended)["TrainingJobStatus"] == "Completed"


def test_sigkill_of_the_server_leaves_jobs_the_next_server_reaps(
    images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    first = _start_server()
    try:
        sm = first.client("sagemaker")
        first.client("s3").create_bucket(Bucket="team")
        sm.create_training_job(**_request("orphan", images["epochs"], Environment={"EPOCHS": "300"}))
        _until(sm, "orphan", lambda d: d["SecondaryStatus"] == "Training", timeout=60)
    finally:
        first.proc.kill()
        first.proc.wait()
    label = {"label": f"sm-contract.run={first.run_id}"}
    assert docker_client.api.containers(filters=label), "the killed server's job is still running"
    second = _start_server()
    try:
        assert docker_client.api.containers(all=True, filters=label) == []
    finally:
        second.proc.send_signal(signal.SIGINT)
        assert second.proc.wait(timeout=60) == 0


def _serve(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest_sagemaker_contract", "serve", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_runs_a_command_against_itself_and_exits_with_its_status() -> None:
    code = "import boto3; print('ACCOUNT', boto3.client('sts').get_caller_identity()['Account']); raise SystemExit(3)"
    done = _serve("--", sys.executable, "-c", code)
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("export AWS_ENDPOINT_URL_SAGEMAKER=http://127.0.0.1:")
    assert lines[-1] == "ACCOUNT 123456789012"


def test_bad_options_and_no_engine_are_one_line_each() -> None:
    port = _serve("--port", "70000")
    assert port.returncode == 2
    assert port.stderr.strip() == "sm-contract: --port 70000 is not a port (0-65535)"
    assert port.stdout == ""
    engine = _serve(env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert engine.returncode == 1
    assert engine.stderr.startswith("sm-contract: cannot serve: ")
    assert "DOCKER_HOST" in engine.stderr
    assert len(engine.stderr.strip().splitlines()) == 1, engine.stderr
    assert "Traceback" not in engine.stderr
