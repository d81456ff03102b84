"""Request parsing and validation: what AWS would reject is rejected here, with the field, value and limit."""

from __future__ import annotations

import copy
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.spec import (
    DEFAULT_ROLE_ARN,
    MAX_JOB_FILE_BYTES,
    MAX_JSON_DEPTH,
    InstanceGroupSpec,
    RequestError,
    channel_name_problem,
    checkpoint_path_problem,
    json_depth,
    load_request,
    parse_request,
    validate_request,
)

from ..helpers import EXAMPLES


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
    # SM-METRICS checks MetricDefinitions: the header must not call them "not simulated" (issue 17, item 6).
    assert "AlgorithmSpecification.MetricDefinitions" not in spec.not_simulated


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
        "DebugHookConfig",
        "EnableInterContainerTrafficEncryption",
        "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
    ):
        assert name in spec.not_simulated
    assert "AlgorithmSpecification.MetricDefinitions" not in spec.not_simulated
    assert "EnableManagedSpotTraining" not in spec.not_simulated  # interruptions restart the job (§11)
    assert (spec.managed_spot, spec.max_wait_s) == (True, 7200)
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
        ("InputDataConfig[0] and InputDataConfig[1]", "unique", "'train'"),
    ),
    "channel named .": (
        lambda: request(InputDataConfig=[channel(".")]),
        ("InputDataConfig[0].ChannelName", "/opt/ml/input/data/. itself"),
    ),
    "channel named ..": (
        lambda: request(InputDataConfig=[channel("..")]),
        ("InputDataConfig[0].ChannelName", "/opt/ml/input/data/.. itself"),
    ),
    "checkpoint path /": (
        lambda: request(CheckpointConfig={"S3Uri": "s3://bucket/ckpt", "LocalPath": "/"}),
        ("CheckpointConfig.LocalPath", "'/' would replace", "/opt/ml/checkpoints"),
    ),
    "checkpoint path /opt/ml/model": (
        lambda: request(CheckpointConfig={"S3Uri": "s3://bucket/ckpt", "LocalPath": "/opt/ml/model"}),
        ("CheckpointConfig.LocalPath", "'/opt/ml/model' is inside /opt/ml/model", "/opt/ml/checkpoints"),
    ),
    "checkpoint path relative": (
        lambda: request(CheckpointConfig={"S3Uri": "s3://bucket/ckpt", "LocalPath": "ckpt"}),
        ("CheckpointConfig.LocalPath", "'ckpt' is a relative path"),
    ),
    "max runtime not an integer": (
        lambda: request(StoppingCondition={"MaxRuntimeInSeconds": 1e30}),
        ("MaxRuntimeInSeconds", "expected an integer", "1e+30"),
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
    "max wait below max runtime": (
        lambda: request(
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 3600},
        ),
        ("StoppingCondition.MaxWaitTimeInSeconds: 3600", ">= MaxRuntimeInSeconds (7200)"),
    ),
    "spot without max wait": (
        lambda: request(EnableManagedSpotTraining=True),
        ("MaxWaitTimeInSeconds: missing", "must be present", ">= MaxRuntimeInSeconds (3600)"),
    ),
    "max wait without spot": (
        lambda: request(StoppingCondition={"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 3600}),
        ("MaxWaitTimeInSeconds (3600) is only for managed spot training", "EnableManagedSpotTraining to true"),
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


def test_spot_request_with_max_wait_covering_the_runtime_is_valid() -> None:
    stopping = {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600}
    assert parse_request(request(EnableManagedSpotTraining=True, StoppingCondition=stopping)).max_runtime_s == 3600


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


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/", "would replace the container's whole filesystem"),
        ("/opt", "would hide /opt/ml/input"),
        ("/opt/ml", "would hide /opt/ml/input"),
        ("/opt/ml/input", "is inside /opt/ml/input"),
        ("/opt/ml/input/data/ckpt", "is inside /opt/ml/input"),
        ("/opt/ml/model", "is inside /opt/ml/model"),
        ("/opt/ml/output", "is inside /opt/ml/output"),
        ("/opt/ml/output/data", "is inside /opt/ml/output"),
        ("/opt/ml/code", "is inside /opt/ml/code"),
        ("/opt/ml/checkpoints/../model", "holds '.' or '..'"),
        ("/opt/ml/./checkpoints", "holds '.' or '..'"),
        ("checkpoints", "is a relative path"),
        ("./ckpt", "is a relative path"),
        ("/proc/ckpt", "kernel filesystem"),
        ("/dev", "kernel filesystem"),
        ("/data:ro", "':' or a control character"),
        ("/ckpt\n", "':' or a control character"),
    ],
)
def test_checkpoint_local_path_problems(path: str, fragment: str) -> None:
    problem = checkpoint_path_problem(path)
    assert problem is not None
    assert fragment in problem
    assert "/opt/ml/checkpoints" in problem


@pytest.mark.parametrize("path", ["/opt/ml/checkpoints", "/opt/ml/checkpoints/", "/tmp/ckpt", "/opt/ml/ckpt", "/data"])
def test_checkpoint_local_paths_sagemaker_runs(path: str) -> None:
    assert checkpoint_path_problem(path) is None
    spec = parse_request(request(CheckpointConfig={"S3Uri": "s3://bucket/ckpt", "LocalPath": path}))
    assert spec.checkpoint is not None
    assert spec.checkpoint.local_path == path


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("train", True),
        ("a.b-c_1", True),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("", False),
        ("c" * 65, False),
        ("c" * 64, True),
    ],
)
def test_channel_names_follow_the_api_pattern_and_never_name_the_data_directory(name: str, ok: bool) -> None:
    assert (channel_name_problem(name) is None) is ok


def test_json_depth_counts_without_recursion() -> None:
    assert json_depth({}) == 1
    assert json_depth(request()) == 2
    deep: list[object] = []
    for _ in range(100_000):  # far past the interpreter's recursion limit
        deep = [deep]
    assert json_depth(deep, limit=MAX_JSON_DEPTH) == MAX_JSON_DEPTH + 1


def test_deep_request_dict_is_a_request_error_not_a_recursion_error() -> None:
    hyper: dict[str, object] = {}
    for _ in range(5000):
        hyper = {"k": hyper}
    with pytest.raises(RequestError, match=f"nest deeper than {MAX_JSON_DEPTH} levels"):
        parse_request(request(HyperParameters=hyper))


def test_load_request_refuses_what_is_not_a_small_regular_json_file(tmp_path: Path) -> None:
    """A FIFO would block the read forever and /dev/zero never ends: refused before any read."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(RequestError, match=r"is a FIFO \(named pipe\), not a regular file"):
        load_request(fifo)
    with pytest.raises(RequestError, match="is a character device, not a regular file"):
        load_request("/dev/zero")
    with pytest.raises(RequestError, match="is a directory"):
        load_request(tmp_path)
    sock_dir = Path(tempfile.gettempdir())  # short enough for a socket name, unlike tmp_path
    with socket.socket(socket.AF_UNIX) as server:
        sock = sock_dir / f"sm-{os.getpid()}.sock"
        server.bind(str(sock))
        try:
            with pytest.raises(RequestError, match="is a socket, not a regular file"):
                load_request(sock)
        finally:
            sock.unlink()
    big = tmp_path / "big.json"
    big.write_text(json.dumps(request()) + " " * MAX_JOB_FILE_BYTES)
    with pytest.raises(RequestError, match="is larger than 1024 KiB"):
        load_request(big)
    exact = tmp_path / "exact.json"
    text = json.dumps(request())
    exact.write_text(text + " " * (MAX_JOB_FILE_BYTES - len(text)))
    assert load_request(exact) == request()


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 900, 100_000])
def test_load_request_limits_nesting(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"HyperParameters": ' + "[" * levels + "]" * levels + "}")
    with pytest.raises(RequestError, match=f"deeper than {MAX_JSON_DEPTH} levels"):
        load_request(path)


def test_load_request_names_an_integer_too_long_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "digits.json"
    path.write_text('{"StoppingCondition": {"MaxRuntimeInSeconds": 1' + "0" * 5000 + "}}")
    with pytest.raises(RequestError, match="is not a valid request: Exceeds the limit"):
        load_request(path)
