"""Request parsing and validation: what AWS would reject is rejected here, with the field, value and limit."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.spec import (
    DEFAULT_ROLE_ARN,
    InstanceGroupSpec,
    RequestError,
    load_request,
    parse_request,
    validate_request,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def request(**top: Any) -> dict[str, Any]:
    """The smallest valid request, with top-level fields replaced by `top`."""
    req: dict[str, Any] = {
        "TrainingJobName": "unit-job",
        "RoleArn": DEFAULT_ROLE_ARN,
        "AlgorithmSpecification": {"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    req.update(top)
    return req


def channel(name: str, uri: str = "s3://bucket/data/train", **extra: Any) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
        **extra,
    }


def with_algo(**algo: Any) -> dict[str, Any]:
    req = request()
    req["AlgorithmSpecification"].update(algo)
    return req


def parse_error(req: dict[str, Any]) -> str:
    with pytest.raises(RequestError) as info:
        parse_request(req)
    return str(info.value)


def test_kmeans_example_job_parses() -> None:
    """The example a user copies must parse; its values come through unchanged."""
    raw = load_request(EXAMPLES / "kmeans" / "job.json")
    spec = parse_request(raw)
    assert spec.name == raw["TrainingJobName"]
    assert spec.hyperparameters == raw["HyperParameters"]
    assert [c.name for c in spec.channels] == [c["ChannelName"] for c in raw["InputDataConfig"]]
    assert spec.channels[0].content_type == "text/csv"
    assert spec.output_path == raw["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    assert spec.max_runtime_s == raw["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert spec.hosts == ("algo-1",)
    assert "AlgorithmSpecification.MetricDefinitions" in spec.not_simulated


def test_image_argument_replaces_training_image() -> None:
    spec = parse_request(load_request(EXAMPLES / "kmeans" / "job.json"), image="local/kmeans:dev")
    assert spec.image == "local/kmeans:dev"


def test_real_shaped_request_lists_unsimulated_fields() -> None:
    """A request copied from a real pipeline must parse; what we don't act on is named, not dropped silently."""
    req = request(
        VpcConfig={"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]},
        EnableManagedSpotTraining=True,
        DebugHookConfig={"S3OutputPath": "s3://bucket/debug"},
        Tags=[{"Key": "team", "Value": "ml"}],
        EnableInterContainerTrafficEncryption=False,
    )
    req["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200
    req["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]
    req["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = True
    spec = parse_request(req)
    for name in (
        "VpcConfig",
        "EnableManagedSpotTraining",
        "DebugHookConfig",
        "EnableInterContainerTrafficEncryption",
        "AlgorithmSpecification.MetricDefinitions",
        "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
    ):
        assert name in spec.not_simulated
    assert "Tags" not in spec.not_simulated
    assert "TrainingJobName" not in spec.not_simulated


def test_parse_does_not_mutate_the_request() -> None:
    req = request()
    before = copy.deepcopy(req)
    parse_request(req, image="other:tag")
    assert req == before


def test_valid_request_has_no_errors() -> None:
    assert validate_request(request()) == []


def many(n: int, prefix: str) -> dict[str, str]:
    return {f"{prefix}{i}": "v" for i in range(n)}


INVALID: dict[str, tuple[Callable[[], dict[str, Any]], tuple[str, ...]]] = {
    "job name pattern": (lambda: request(TrainingJobName="bad_name"), ("TrainingJobName", "'bad_name'", "pattern")),
    "job name too long": (lambda: request(TrainingJobName="a" * 64), ("TrainingJobName", "64", "63")),
    "hyperparameter not a string": (
        lambda: request(HyperParameters={"epochs": 5}),
        ("HyperParameters['epochs']", "string", "5"),
    ),
    "too many hyperparameters": (lambda: request(HyperParameters=many(101, "k")), ("HyperParameters", "101", "100")),
    "hyperparameter value too long": (
        lambda: request(HyperParameters={"k": "x" * 2501}),
        ("HyperParameters['k']", "2501", "2500"),
    ),
    "entrypoint empty": (lambda: with_algo(ContainerEntrypoint=[]), ("ContainerEntrypoint", "0 items", "minimum is 1")),
    "entrypoint 101 items": (
        lambda: with_algo(ContainerEntrypoint=["x"] * 101),
        ("ContainerEntrypoint", "101 items", "100"),
    ),
    "entrypoint item too long": (
        lambda: with_algo(ContainerEntrypoint=["x" * 257]),
        ("ContainerEntrypoint[0]", "257", "256"),
    ),
    "arguments item too long": (
        lambda: with_algo(ContainerArguments=["ok", "y" * 257]),
        ("ContainerArguments[1]", "257", "256"),
    ),
    "environment key pattern": (
        lambda: request(Environment={"MY-VAR": "1"}),
        ("Environment", "'MY-VAR'", "[a-zA-Z_][a-zA-Z0-9_]*"),
    ),
    "too many environment entries": (lambda: request(Environment=many(101, "V")), ("Environment", "101", "100")),
    "channel name characters": (
        lambda: request(InputDataConfig=[channel("my channel")]),
        ("InputDataConfig[0].ChannelName", "'my channel'", "pattern"),
    ),
    "channel name too long": (
        lambda: request(InputDataConfig=[channel("c" * 65)]),
        ("InputDataConfig[0].ChannelName", "65", "64"),
    ),
    "duplicate channels": (
        lambda: request(InputDataConfig=[channel("train"), channel("train")]),
        ("InputDataConfig", "unique", "train"),
    ),
    "too many channels": (
        lambda: request(InputDataConfig=[channel(f"c{i}") for i in range(21)]),
        ("InputDataConfig", "21", "20"),
    ),
    "S3Uri too long": (
        lambda: request(InputDataConfig=[channel("train", "s3://bucket/" + "k" * 1013)]),
        ("S3Uri", "1025", "1024"),
    ),
    "unknown top-level field": (lambda: request(TrainingJobname="x"), ("unknown field", "'TrainingJobname'")),
    "instance count 0": (
        lambda: request(ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 0, "VolumeSizeInGB": 10}),
        ("ResourceConfig.InstanceCount", "0", "1"),
    ),
    "max runtime over 28 days": (
        lambda: request(StoppingCondition={"MaxRuntimeInSeconds": 28 * 86400 + 1}),
        ("MaxRuntimeInSeconds", str(28 * 86400 + 1), str(28 * 86400)),
    ),
    "bad input mode enum": (
        lambda: with_algo(TrainingInputMode="Stream"),
        ("TrainingInputMode", "'Stream'", "File", "FastFile", "Pipe"),
    ),
    "missing RoleArn": (lambda: {k: v for k, v in request().items() if k != "RoleArn"}, ("RoleArn", "required")),
    "missing OutputDataConfig": (
        lambda: {k: v for k, v in request().items() if k != "OutputDataConfig"},
        ("OutputDataConfig", "required"),
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_request_error_names_field_value_and_limit(case: str) -> None:
    make, expected = INVALID[case]
    message = parse_error(make())
    assert message.startswith("invalid CreateTrainingJob request: ")
    for part in expected:
        assert part in message, f"{part!r} missing from: {message}"
    assert "\n" not in message


def test_error_message_stays_one_line_with_newlines_in_values() -> None:
    """A multi-line value must not break the one-line report (values are shown escaped)."""
    req = request(TrainingJobName="bad\nname", HyperParameters={"k\nk": 1}, Environment={"A\nB": "v"})
    message = parse_error(req)
    assert "\n" not in message
    assert "and 2 more" in message


def test_several_errors_are_counted() -> None:
    message = parse_error(request(TrainingJobName="a_b", HyperParameters={"k": 1}))
    assert "TrainingJobName" in message
    assert "(and 1 more: HyperParameters['k']" in message


def test_missing_training_image_is_an_error_unless_given() -> None:
    req = request()
    del req["AlgorithmSpecification"]["TrainingImage"]
    assert "TrainingImage" in parse_error(req)
    assert parse_request(req, image="local:tag").image == "local:tag"


def test_channel_input_mode_overrides_the_jobs() -> None:
    req = request(InputDataConfig=[channel("train", InputMode="FastFile"), channel("test")])
    spec = parse_request(req)
    assert {c.name: c.input_mode for c in spec.channels} == {"train": "FastFile", "test": "File"}
    assert spec.input_mode == "File"


def test_channel_defaults() -> None:
    (parsed,) = parse_request(request(InputDataConfig=[channel("train")])).channels
    assert (parsed.distribution, parsed.compression, parsed.record_wrapper, parsed.content_type) == (
        "FullyReplicated",
        "None",
        "None",
        None,
    )


def test_instance_groups_become_hosts_in_request_order() -> None:
    req = request(
        ResourceConfig={
            "InstanceGroups": [
                {"InstanceGroupName": "gpu", "InstanceType": "ml.p3.2xlarge", "InstanceCount": 1},
                {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
            ],
            "VolumeSizeInGB": 30,
        }
    )
    spec = parse_request(req)
    assert spec.instance_groups == (
        InstanceGroupSpec("gpu", "ml.p3.2xlarge", 1),
        InstanceGroupSpec("cpu", "ml.c5.xlarge", 2),
    )
    assert spec.hosts == ("algo-1", "algo-2", "algo-3")
    assert spec.instance_count == 3


def test_instance_groups_with_instance_type_is_rejected() -> None:
    req = request()
    req["ResourceConfig"]["InstanceGroups"] = [
        {"InstanceGroupName": "a", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1}
    ]
    assert "either InstanceGroups or InstanceType/InstanceCount" in parse_error(req)


def test_instance_groups_with_no_instances_are_rejected() -> None:
    req = request(
        ResourceConfig={
            "InstanceGroups": [{"InstanceGroupName": "a", "InstanceType": "ml.c5.xlarge", "InstanceCount": 0}],
            "VolumeSizeInGB": 30,
        }
    )
    assert "InstanceCount" in parse_error(req)


def test_instance_type_and_count() -> None:
    req = request(ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 3, "VolumeSizeInGB": 10})
    spec = parse_request(req)
    assert (spec.instance_type, spec.hosts) == ("ml.c5.xlarge", ("algo-1", "algo-2", "algo-3"))


def test_optional_sections() -> None:
    req = request(CheckpointConfig={"S3Uri": "s3://bucket/ckpt"}, EnableNetworkIsolation=True)
    req["AlgorithmSpecification"].update(ContainerEntrypoint=["/bin/sh"], ContainerArguments=["-c", "true"])
    spec = parse_request(req)
    assert spec.checkpoint is not None
    assert (spec.checkpoint.s3_uri, spec.checkpoint.local_path) == ("s3://bucket/ckpt", "/opt/ml/checkpoints")
    assert spec.network_isolation is True
    assert (spec.entrypoint, spec.arguments) == (("/bin/sh",), ("-c", "true"))
    bare = parse_request(request())
    assert (bare.entrypoint, bare.arguments, bare.checkpoint) == (None, None, None)


def test_output_path_trailing_slash_is_dropped() -> None:
    spec = parse_request(request(OutputDataConfig={"S3OutputPath": "s3://bucket/out/"}))
    assert spec.output_path == "s3://bucket/out"


def test_load_request_errors(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="does not exist"):
        load_request(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(RequestError, match="not valid JSON"):
        load_request(broken)
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([request()]))
    with pytest.raises(RequestError, match="must hold a JSON object"):
        load_request(listing)


def test_hyperparameter_value_limit_is_configurable() -> None:
    """The API model allows 2500 characters per value; the guide's prose says 256 (contract: uncertain)."""
    req = request(HyperParameters={"notes": "x" * 300})
    assert parse_request(req).hyperparameters["notes"] == "x" * 300
    with pytest.raises(RequestError, match=r"HyperParameters\['notes'\]: 300 characters, the limit in use is 256"):
        parse_request(req, hyperparameter_value_limit=256)
