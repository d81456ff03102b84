"""Nested fields the platform accepts but ignores are named, with dotted paths, in the spec and the header
(issue 18, item 9): a request that sets ResourceConfig.VolumeKmsKeyId must not read as fully simulated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_sagemaker_contract.settings import Settings
from pytest_sagemaker_contract.spec import (
    DEFAULT_ROLE_ARN,
    SIMULATED_FIELDS,
    RequestError,
    parse_request,
    unsimulated_nested,
)


def request(**top: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "TrainingJobName": "nested-job",
        "RoleArn": DEFAULT_ROLE_ARN,
        "AlgorithmSpecification": {"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/t"}}}
        ],
    }
    req.update(top)
    return req


def test_a_plain_request_names_nothing() -> None:
    assert unsimulated_nested(request()) == []
    assert parse_request(request()).not_simulated == ()


def test_ignored_nested_fields_are_named_with_dotted_paths() -> None:
    req = request()
    req["OutputDataConfig"]["KmsKeyId"] = "alias/out"
    req["ResourceConfig"].update(VolumeKmsKeyId="alias/vol", KeepAlivePeriodInSeconds=60)
    req["StoppingCondition"]["MaxPendingTimeInSeconds"] = 7200
    req["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = True
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["ModelAccessConfig"] = {"AcceptEula": True}
    req["InputDataConfig"].append(
        {"ChannelName": "eval", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/e"}}}
    )
    skipped = parse_request(req).not_simulated
    assert set(skipped) == {
        "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
        "InputDataConfig.DataSource.S3DataSource.ModelAccessConfig",
        "OutputDataConfig.KmsKeyId",
        "ResourceConfig.VolumeKmsKeyId",
        "StoppingCondition.MaxPendingTimeInSeconds",
    }
    assert len(skipped) == len(set(skipped)), "a field set in several channels is named once"
    # What the platform acts on is never named.
    for simulated in ("ResourceConfig.KeepAlivePeriodInSeconds", "ResourceConfig.InstanceType", "OutputDataConfig"):
        assert simulated not in skipped


def test_max_wait_is_named_until_managed_spot_is_simulated() -> None:
    req = request(EnableManagedSpotTraining=True)
    req["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200
    skipped = parse_request(req).not_simulated
    spot_simulated = "EnableManagedSpotTraining" in SIMULATED_FIELDS
    assert ("StoppingCondition.MaxWaitTimeInSeconds" in skipped) is not spot_simulated
    assert ("EnableManagedSpotTraining" in skipped) is not spot_simulated


def test_file_system_channels_are_simulated() -> None:
    fs = {"FileSystemId": "fs-0123456789abcdef0", "FileSystemType": "EFS", "DirectoryPath": "/d"}
    req = request()
    req["InputDataConfig"][0]["DataSource"] = {"FileSystemDataSource": {**fs, "FileSystemAccessMode": "ro"}}
    assert unsimulated_nested(req) == []


def test_the_header_names_nested_fields(tmp_path: Path) -> None:
    req = request()
    req["ResourceConfig"]["VolumeKmsKeyId"] = "alias/vol"
    settings = Settings(
        job_file=tmp_path / "job.json", job_request=req, given={"sm_image": ("img:latest", "--sm-image")}
    )
    lines = [line for line in settings.header() if "accepted but not simulated" in line]
    assert len(lines) == 1
    assert lines[0].endswith(": ResourceConfig.VolumeKmsKeyId")


def test_a_data_source_the_platform_does_not_simulate_is_refused_by_name() -> None:
    req = request()
    req["InputDataConfig"][0]["DataSource"] = {
        "DatasetSource": {"DatasetArn": "arn:aws:sagemaker:us-east-1:123456789012:hub-content/hub/DataSet/d"}
    }
    try:
        parse_request(req)
    except RequestError as exc:
        message = str(exc)
    else:
        raise AssertionError("a DatasetSource channel was accepted")
    assert "InputDataConfig[0].DataSource: DatasetSource is not simulated" in message


def test_a_file_system_channel_needs_a_vpc_and_file_mode() -> None:
    fs = {"FileSystemId": "fs-0123456789abcdef0", "FileSystemType": "FSxLustre", "DirectoryPath": "/fsx"}
    req = request()
    req["InputDataConfig"][0]["DataSource"] = {"FileSystemDataSource": {**fs, "FileSystemAccessMode": "rw"}}
    req["InputDataConfig"][0]["InputMode"] = "FastFile"
    try:
        parse_request(req)
    except RequestError as exc:
        message = str(exc)
    else:
        raise AssertionError("a file system channel without a VPC was accepted")
    assert "add VpcConfig" in message
    assert "input mode FastFile" in message
    req["VpcConfig"] = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}
    del req["InputDataConfig"][0]["InputMode"]
    channel = parse_request(req).channels[0]
    assert channel.file_system is not None
    assert channel.file_system.access_mode == "rw"
    assert channel.s3_uri == ""
