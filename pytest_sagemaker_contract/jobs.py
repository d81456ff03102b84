"""Building CreateTrainingJob requests from a base request plus overrides in SageMaker's own terms."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .spec import DEFAULT_ROLE_ARN

__all__ = ["CHANNEL_BUCKET", "default_request", "job_name", "with_overrides"]

#: The bucket generated channel and output URIs live in (in the platform's own moto S3).
CHANNEL_BUCKET = "sagemaker-contract"


def job_name(prefix: str) -> str:
    """A valid, unique TrainingJobName (≤ 63 chars of [a-zA-Z0-9-])."""
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", prefix).strip("-")[:48] or "job"
    clean = re.sub(r"-{2,}", "-", clean)
    return f"{clean}-{uuid.uuid4().hex[:8]}"


def default_request(name: str) -> dict[str, Any]:
    """The smallest request AWS accepts, with local S3 output."""
    return {
        "TrainingJobName": name,
        "RoleArn": DEFAULT_ROLE_ARN,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"s3://{CHANNEL_BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    }


def _channel(name: str, uri: str, mode: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }
    if mode is not None:
        channel["InputMode"] = mode
    return channel


def with_overrides(
    base: Mapping[str, Any] | None,
    *,
    name: str,
    image: str,
    hyperparameters: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    channel_uris: Mapping[str, str] | None = None,
    instance_type: str | None = None,
    instance_count: int | None = None,
    entrypoint: Sequence[str] | None = None,
    arguments: Sequence[str] | None = None,
    keep_invocation: bool = True,
    max_runtime_s: int | None = None,
    checkpoint_s3_uri: str | None = None,
    checkpoint_local_path: str | None = None,
    network_isolation: bool | None = None,
    input_mode: str | None = None,
) -> dict[str, Any]:
    """A copy of `base` (or the default request) with the overrides applied.

    `channel_uris` maps channel names to S3 URIs: a channel the request already has keeps its
    settings and gets the URI only if it had none; a new channel is added as S3Prefix/FullyReplicated.
    `keep_invocation=False` drops the request's ContainerEntrypoint/ContainerArguments first.
    """
    req = copy.deepcopy(dict(base)) if base is not None else default_request(name)
    req["TrainingJobName"] = name
    req.setdefault("RoleArn", DEFAULT_ROLE_ARN)
    algo = req.setdefault("AlgorithmSpecification", {"TrainingInputMode": "File"})
    algo["TrainingImage"] = image
    algo.setdefault("TrainingInputMode", "File")
    if input_mode is not None:
        algo["TrainingInputMode"] = input_mode
    if not keep_invocation:
        algo.pop("ContainerEntrypoint", None)
        algo.pop("ContainerArguments", None)
    if entrypoint is not None:
        algo["ContainerEntrypoint"] = list(entrypoint)
    if arguments is not None:
        algo["ContainerArguments"] = list(arguments)
    if hyperparameters:
        req["HyperParameters"] = {**req.get("HyperParameters", {}), **hyperparameters}
    if environment:
        req["Environment"] = {**req.get("Environment", {}), **environment}
    req.setdefault("OutputDataConfig", {"S3OutputPath": f"s3://{CHANNEL_BUCKET}/output"})
    resource = req.setdefault("ResourceConfig", {"InstanceType": "ml.m5.large", "InstanceCount": 1})
    if instance_type is not None or instance_count is not None:
        resource.pop("InstanceGroups", None)
        resource.setdefault("InstanceType", "ml.m5.large")
        resource.setdefault("InstanceCount", 1)
    if instance_type is not None:
        resource["InstanceType"] = instance_type
    if instance_count is not None:
        resource["InstanceCount"] = instance_count
    if max_runtime_s is not None:
        req.setdefault("StoppingCondition", {})["MaxRuntimeInSeconds"] = max_runtime_s
    if checkpoint_s3_uri is not None:
        req["CheckpointConfig"] = {"S3Uri": checkpoint_s3_uri}
        if checkpoint_local_path is not None:
            req["CheckpointConfig"]["LocalPath"] = checkpoint_local_path
    if network_isolation is not None:
        req["EnableNetworkIsolation"] = network_isolation
    if channel_uris:
        channels = req.setdefault("InputDataConfig", [])
        by_name = {c.get("ChannelName"): c for c in channels}
        for cname, uri in channel_uris.items():
            if cname in by_name:
                source = by_name[cname].setdefault("DataSource", {}).setdefault("S3DataSource", {})
                source.setdefault("S3DataType", "S3Prefix")
                source["S3Uri"] = uri
            else:
                channels.append(_channel(cname, uri))
    return req


def local_channel_uri(run_id: str, name: str) -> str:
    """The S3 URI a local channel without one of its own stands in for (uploaded there only when needed)."""
    return f"s3://{CHANNEL_BUCKET}/{run_id}/channels/{name}/"
