"""The request planner: CreateTrainingJob requests from a base request plus overrides in SageMaker's own terms.

Every default a request gets (role, instance type, output path, runtime) and every S3 URI the plugin
generates is written here once; `spec.py` and the plugin read them from here. `JobOverrides` is the one
list of override keywords: the `training_job(...)` factory takes them, `@pytest.mark.sagemaker_job(...)`
is validated against them, and README's table is tested against them.
"""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "CHANNEL_BUCKET",
    "DEFAULT_INSTANCE_TYPE",
    "DEFAULT_MAX_RUNTIME",
    "DEFAULT_OUTPUT_PATH",
    "DEFAULT_ROLE_ARN",
    "OVERRIDE_KEYWORDS",
    "JobOverrides",
    "RequestOverrides",
    "default_request",
    "instance_type_of",
    "job_name",
    "local_channel_uri",
    "session_uri",
    "with_overrides",
]

#: The role a request without RoleArn gets (the local platform assumes nothing with it).
DEFAULT_ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerContractTestRole"
#: ResourceConfig.InstanceType when neither the request nor an option sets one.
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
#: StoppingCondition.MaxRuntimeInSeconds when the request sets none (SageMaker's default, one day).
DEFAULT_MAX_RUNTIME = 86400
#: The bucket generated channel, checkpoint and output URIs live in (in the platform's own moto S3).
CHANNEL_BUCKET = "sagemaker-contract"
#: OutputDataConfig.S3OutputPath when the request sets none.
DEFAULT_OUTPUT_PATH = f"s3://{CHANNEL_BUCKET}/output"


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
        "OutputDataConfig": {"S3OutputPath": DEFAULT_OUTPUT_PATH},
        "ResourceConfig": {"InstanceType": DEFAULT_INSTANCE_TYPE, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME},
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
    req.setdefault("OutputDataConfig", {"S3OutputPath": DEFAULT_OUTPUT_PATH})
    resource = req.setdefault("ResourceConfig", {"InstanceType": DEFAULT_INSTANCE_TYPE, "InstanceCount": 1})
    if instance_type is not None or instance_count is not None:
        resource.pop("InstanceGroups", None)
        resource.setdefault("InstanceType", DEFAULT_INSTANCE_TYPE)
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
                if "FileSystemDataSource" in (by_name[cname].get("DataSource") or {}):
                    continue  # a local directory is mounted in the file system's place; no S3 involved
                source = by_name[cname].setdefault("DataSource", {}).setdefault("S3DataSource", {})
                source.setdefault("S3DataType", "S3Prefix")
                source["S3Uri"] = uri
            else:
                channels.append(_channel(cname, uri))
    return req


def instance_type_of(request: Mapping[str, Any] | None, override: str | None = None) -> str:
    """The instance type a job of `request` runs on: `override` (a test's or --sm-instance-type), else the
    request's InstanceType, else its first instance group's, else DEFAULT_INSTANCE_TYPE (as `with_overrides`
    and `parse_request` build it)."""
    if override:
        return override
    resource = (request or {}).get("ResourceConfig") or {}
    groups = resource.get("InstanceGroups") or []
    group_type = groups[0].get("InstanceType") if groups else None
    return str(resource.get("InstanceType") or group_type or DEFAULT_INSTANCE_TYPE)


def session_uri(run_id: str, *parts: str) -> str:
    """An S3 URI of the session's own (in CHANNEL_BUCKET, under its run id): e.g. a generated checkpoint URI."""
    return "/".join((f"s3://{CHANNEL_BUCKET}", run_id, *parts))


def local_channel_uri(run_id: str, name: str) -> str:
    """The S3 URI a local channel without one of its own stands in for (uploaded there only when needed)."""
    return session_uri(run_id, "channels", name) + "/"
