"""The /opt/ml config files and mounts of one host: the exact shapes of contract.md §2–§4."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.platform.layout import (
    Host,
    HostLayout,
    assign_hosts,
    channels_for,
    container_environment,
    hyperparameters_json,
    input_data_config_json,
    instance_hostname,
    resource_config_json,
    training_job_arn,
)
from pytest_sagemaker_contract.spec import DEFAULT_ROLE_ARN, TrainingJobSpec, parse_request


def spec_of(**top: Any) -> TrainingJobSpec:
    req: dict[str, Any] = {
        "TrainingJobName": "Layout-Job-1",
        "RoleArn": DEFAULT_ROLE_ARN,
        "AlgorithmSpecification": {"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/output"},
        "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    req.update(top)
    return parse_request(req)


def s3_channel(name: str, **extra: Any) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": f"s3://bucket/{name}", **extra.pop("source", {})}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, **extra}


HETERO = {
    "InstanceGroups": [
        {"InstanceGroupName": "gpu", "InstanceType": "ml.p3.2xlarge", "InstanceCount": 1},
        {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
    ],
    "VolumeSizeInGB": 30,
}


def test_resource_config_one_host_is_the_real_shape() -> None:
    spec = spec_of()
    (host,) = assign_hosts(spec)
    assert resource_config_json(spec, host) == {
        "current_host": "algo-1",
        "current_instance_type": "ml.c5.xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"],
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]}
        ],
        "network_interface_name": "eth0",
    }


def test_resource_config_three_hosts() -> None:
    spec = spec_of(ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 3, "VolumeSizeInGB": 10})
    hosts = assign_hosts(spec)
    assert [h.name for h in hosts] == ["algo-1", "algo-2", "algo-3"]
    for host in hosts:
        config = resource_config_json(spec, host)
        assert config["current_host"] == host.name
        assert config["hosts"] == ["algo-1", "algo-2", "algo-3"]
        assert config["instance_groups"] == [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.c5.xlarge",
                "hosts": ["algo-1", "algo-2", "algo-3"],
            }
        ]


def test_resource_config_hosts_sort_numerically_past_nine() -> None:
    spec = spec_of(ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 11, "VolumeSizeInGB": 10})
    config = resource_config_json(spec, assign_hosts(spec)[0])
    assert config["hosts"] == [f"algo-{i}" for i in range(1, 12)]


def test_resource_config_heterogeneous_groups() -> None:
    spec = spec_of(ResourceConfig=HETERO)
    hosts = assign_hosts(spec)
    assert hosts == (
        Host("algo-1", "gpu", "ml.p3.2xlarge"),
        Host("algo-2", "cpu", "ml.c5.xlarge"),
        Host("algo-3", "cpu", "ml.c5.xlarge"),
    )
    groups = [
        {"instance_group_name": "gpu", "instance_type": "ml.p3.2xlarge", "hosts": ["algo-1"]},
        {"instance_group_name": "cpu", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2", "algo-3"]},
    ]
    for host in hosts:
        config = resource_config_json(spec, host)
        assert config["current_host"] == host.name
        assert config["current_group_name"] == host.group
        assert config["current_instance_type"] == host.instance_type
        assert config["hosts"] == ["algo-1", "algo-2", "algo-3"]
        assert config["instance_groups"] == groups


def test_input_data_config_per_channel() -> None:
    spec = spec_of(
        InputDataConfig=[
            s3_channel("train", ContentType="text/csv"),
            s3_channel("eval", InputMode="FastFile", source={"S3DataDistributionType": "ShardedByS3Key"}),
            s3_channel("stream", InputMode="Pipe", CompressionType="Gzip", RecordWrapperType="RecordIO"),
        ]
    )
    config = input_data_config_json(spec, assign_hosts(spec)[0])
    assert config == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        },
        "eval": {
            "TrainingInputMode": "FastFile",
            "S3DistributionType": "ShardedByS3Key",
            "RecordWrapperType": "None",
        },
        "stream": {
            "TrainingInputMode": "Pipe",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "RecordIO",
            "CompressionType": "Gzip",
        },
    }


def test_input_data_config_without_channels_is_empty() -> None:
    spec = spec_of()
    assert input_data_config_json(spec, assign_hosts(spec)[0]) == {}


def test_channels_limited_by_instance_group_names() -> None:
    spec = spec_of(
        ResourceConfig=HETERO,
        InputDataConfig=[
            s3_channel("everyone"),
            s3_channel("gpu-only", source={"InstanceGroupNames": ["gpu"]}),
            s3_channel("cpu-only", source={"InstanceGroupNames": ["cpu"]}),
        ],
    )
    gpu, cpu, _ = assign_hosts(spec)
    assert [c.name for c in channels_for(spec, gpu)] == ["everyone", "gpu-only"]
    assert list(input_data_config_json(spec, gpu)) == ["everyone", "gpu-only"]
    assert list(input_data_config_json(spec, cpu)) == ["everyone", "cpu-only"]


def test_hyperparameters_json() -> None:
    assert hyperparameters_json(spec_of()) == {}
    assert hyperparameters_json(spec_of(HyperParameters={"lr": "0.1", "epochs": "3"})) == {
        "lr": "0.1",
        "epochs": "3",
    }


def read_config(layout: HostLayout) -> dict[str, Any]:
    return {p.name: json.loads(p.read_text()) for p in sorted(layout.config.iterdir())}


def test_write_config_files(tmp_path: Path) -> None:
    spec = spec_of(InputDataConfig=[s3_channel("train")])
    host = assign_hosts(spec)[0]
    layout = HostLayout(tmp_path / "algo-1", None)
    layout.create()
    layout.write_config(spec, host)
    assert read_config(layout) == {
        "hyperparameters.json": {},
        "inputdataconfig.json": input_data_config_json(spec, host),
        "resourceconfig.json": resource_config_json(spec, host),
    }


def test_checkpoint_config_only_with_checkpoint_config(tmp_path: Path) -> None:
    spec = spec_of(CheckpointConfig={"S3Uri": "s3://bucket/ckpt", "LocalPath": "/opt/ml/ckpt"})
    assert spec.checkpoint is not None
    layout = HostLayout(tmp_path / "algo-1", spec.checkpoint.local_path)
    layout.create()
    layout.write_config(spec, assign_hosts(spec)[0])
    assert read_config(layout)["checkpointconfig.json"]["LocalPath"] == "/opt/ml/ckpt"


def test_container_environment() -> None:
    spec = spec_of(Environment={"MY_SETTING": "on", "LOG_LEVEL": "debug"})
    env = container_environment(spec, "eu-west-1", set_region=False)
    assert env == {
        "TRAINING_JOB_NAME": "Layout-Job-1",
        "TRAINING_JOB_ARN": "arn:aws:sagemaker:eu-west-1:123456789012:training-job/layout-job-1",
        "MY_SETTING": "on",
        "LOG_LEVEL": "debug",
    }
    assert not [k for k in container_environment(spec, "eu-west-1", set_region=True) if k.startswith("SM_")]
    assert container_environment(spec, "eu-west-1", set_region=True)["AWS_REGION"] == "eu-west-1"
    assert training_job_arn(spec, "eu-west-1") == env["TRAINING_JOB_ARN"]


def targets(binds: dict[str, dict[str, str]]) -> dict[str, str]:
    return {b["bind"]: b["mode"] for b in binds.values()}


def test_binds_mount_only_platform_dirs(tmp_path: Path) -> None:
    """/opt/ml itself is never mounted, so an image's /opt/ml/code survives (contract.md §1)."""
    layout = HostLayout(tmp_path / "algo-1", None)
    binds = layout.binds()
    assert targets(binds) == {"/opt/ml/input": "rw", "/opt/ml/model": "rw", "/opt/ml/output": "rw"}
    assert binds[str(layout.model)]["bind"] == "/opt/ml/model"


def test_binds_checkpoints_and_fastfile_channels(tmp_path: Path) -> None:
    layout = HostLayout(tmp_path / "algo-1", "/opt/ml/checkpoints")
    binds = layout.binds(read_only_channels=("train",))
    assert targets(binds) == {
        "/opt/ml/input": "rw",
        "/opt/ml/model": "rw",
        "/opt/ml/output": "rw",
        "/opt/ml/checkpoints": "rw",
        "/opt/ml/input/data/train": "ro",
    }
    assert "/opt/ml" not in targets(binds)
    assert binds[str(layout.channel_dir("train"))]["mode"] == "ro"


def test_create_makes_writable_dirs(tmp_path: Path) -> None:
    layout = HostLayout(tmp_path / "algo-1", "/opt/ml/checkpoints")
    layout.create()
    for path in (layout.config, layout.data, layout.model, layout.output_data, layout.checkpoints):
        assert path is not None
        assert path.is_dir()
    assert layout.model.stat().st_mode & 0o777 == 0o777


@pytest.mark.parametrize("text", ["x" * 5000, "é" * 3000])
def test_failure_text_reads_at_most_1024_characters(tmp_path: Path, text: str) -> None:
    layout = HostLayout(tmp_path / "algo-1", None)
    layout.create()
    assert layout.failure_text() is None
    (layout.output / "failure").write_text(text)
    assert layout.failure_text() == text[:1024]


def test_failure_text_short(tmp_path: Path) -> None:
    layout = HostLayout(tmp_path / "algo-1", None)
    layout.create()
    (layout.output / "failure").write_text("bad input\n")
    assert layout.failure_text() == "bad input\n"


def test_instance_host_names_look_like_ec2_and_differ_per_host_and_job() -> None:
    names = [instance_hostname("a1b2c3", i) for i in range(300)]
    assert all(re.fullmatch(r"ip-10-0-(\d+)-(\d+)", n) for n in names)
    assert all(1 <= int(n.split("-")[3]) <= 254 and int(n.split("-")[4]) <= 255 for n in names)
    assert len(set(names)) == 300
    assert not any(n.startswith("algo-") for n in names)
    assert instance_hostname("a1b2c3", 0) == instance_hostname("a1b2c3", 0)
    assert instance_hostname("a1b2c3", 0) != instance_hostname("d4e5f6", 0)
