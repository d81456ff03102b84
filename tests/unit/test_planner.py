"""The request planner (jobs.py) owns every default; the parser and the plugin agree with it."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_sagemaker_contract.jobs import (
    CHANNEL_BUCKET,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_RUNTIME,
    DEFAULT_OUTPUT_PATH,
    instance_type_of,
    local_channel_uri,
    session_uri,
    with_overrides,
)
from pytest_sagemaker_contract.spec import parse_request

GROUPS = {
    "InstanceGroups": [
        {"InstanceGroupName": "a", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
        {"InstanceGroupName": "b", "InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    ],
    "VolumeSizeInGB": 10,
}
REQUESTS: list[tuple[dict[str, Any] | None, str]] = [
    (None, DEFAULT_INSTANCE_TYPE),
    ({"ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10}}, "ml.p3.2xlarge"),
    ({"ResourceConfig": GROUPS}, "ml.c5.xlarge"),
]


@pytest.mark.parametrize(("request_", "expected"), REQUESTS)
def test_the_instance_type_is_the_one_the_parsed_request_runs_on(
    request_: dict[str, Any] | None, expected: str
) -> None:
    assert instance_type_of(request_) == expected
    spec = parse_request(with_overrides(request_, name="plan", image="img"))
    assert spec.instance_type == expected


@pytest.mark.parametrize(("request_", "_"), REQUESTS)
def test_an_override_wins_as_the_factory_applies_it(request_: dict[str, Any] | None, _: str) -> None:
    assert instance_type_of(request_, "ml.g5.xlarge") == "ml.g5.xlarge"
    spec = parse_request(with_overrides(request_, name="plan", image="img", instance_type="ml.g5.xlarge"))
    assert spec.instance_type == "ml.g5.xlarge"


def test_the_default_request_and_the_parser_share_the_defaults() -> None:
    spec = parse_request(with_overrides(None, name="plan", image="img"))
    assert spec.output_path == DEFAULT_OUTPUT_PATH == f"s3://{CHANNEL_BUCKET}/output"
    assert spec.max_runtime_s == DEFAULT_MAX_RUNTIME


def test_generated_uris_live_under_the_session_in_the_bucket() -> None:
    assert session_uri("run-1", "checkpoints") == f"s3://{CHANNEL_BUCKET}/run-1/checkpoints"
    assert local_channel_uri("run-1", "train") == f"s3://{CHANNEL_BUCKET}/run-1/channels/train/"
