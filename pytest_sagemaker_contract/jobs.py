"""Building CreateTrainingJob requests from a base request plus overrides in SageMaker's own terms.

`JobOverrides` is the one list of override keywords: the `training_job(...)` factory takes them,
`@pytest.mark.sagemaker_job(...)` is validated against them, and README's table is tested against them.
"""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from .spec import DEFAULT_ROLE_ARN

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "CHANNEL_BUCKET",
    "OVERRIDE_KEYWORDS",
    "JobOverrides",
    "RequestOverrides",
    "default_request",
    "job_name",
    "with_overrides",
]


class _Base(TypedDict, total=False):
    #: A request file (path) or a request dict to start from instead of --sm-job.
    job: str | os.PathLike[str] | Mapping[str, Any]
    #: TrainingJobName prefix (a unique suffix is added).
    name: str


class RequestOverrides(TypedDict, total=False):
    """Overrides that change the CreateTrainingJob request itself."""

    hyperparameters: Mapping[str, str]
    environment: Mapping[str, str]
    instance_type: str
    instance_count: int
    entrypoint: Sequence[str]
    arguments: Sequence[str]
    #: False drops the base request's ContainerEntrypoint/ContainerArguments first.
    keep_invocation: bool
    #: StoppingCondition.MaxRuntimeInSeconds.
    max_runtime: int
    checkpoint_s3_uri: str
    checkpoint_local_path: str
    network_isolation: bool
    input_mode: str


class JobOverrides(_Base, RequestOverrides, total=False):
    """Every keyword of `training_job(image=None, **overrides)` and `@pytest.mark.sagemaker_job(...)`."""

    #: Channel name -> local path or s3:// URI.
    channels: Mapping[str, str | os.PathLike[str]]
    #: auto | all | none | devices (--sm-gpus for this job).
    gpus: str
    #: Seconds the run may take (--sm-timeout for this job).
    timeout: float


#: The override keywords, in declaration order.
OVERRIDE_KEYWORDS: tuple[str, ...] = tuple(JobOverrides.__annotations__)

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
    channel_uris: Mapping[str, str] | None = None,
    **overrides: Unpack[RequestOverrides],
) -> dict[str, Any]:
    """A copy of `base` (or the default request) with the overrides applied.

    `channel_uris` maps channel names to S3 URIs: a channel the request already has keeps its
    settings and gets the URI only if it had none; a new channel is added as S3Prefix/FullyReplicated.
    """
    unknown = sorted(set(overrides) - set(RequestOverrides.__annotations__))
    if unknown:
        raise TypeError(f"with_overrides() got an unexpected keyword {unknown[0]!r}")
    hyperparameters = overrides.get("hyperparameters")
    environment = overrides.get("environment")
    instance_type = overrides.get("instance_type")
    instance_count = overrides.get("instance_count")
    entrypoint = overrides.get("entrypoint")
    arguments = overrides.get("arguments")
    max_runtime_s = overrides.get("max_runtime")
    checkpoint_s3_uri = overrides.get("checkpoint_s3_uri")
    checkpoint_local_path = overrides.get("checkpoint_local_path")
    network_isolation = overrides.get("network_isolation")
    input_mode = overrides.get("input_mode")
    req = copy.deepcopy(dict(base)) if base is not None else default_request(name)
    req["TrainingJobName"] = name
    req.setdefault("RoleArn", DEFAULT_ROLE_ARN)
    algo = req.setdefault("AlgorithmSpecification", {"TrainingInputMode": "File"})
    algo["TrainingImage"] = image
    algo.setdefault("TrainingInputMode", "File")
    if input_mode is not None:
        algo["TrainingInputMode"] = input_mode
    if not overrides.get("keep_invocation", True):
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
