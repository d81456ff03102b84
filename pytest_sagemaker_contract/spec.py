"""CreateTrainingJob requests: validation against AWS's own API model, and the parsed spec.

The limits are read from the SageMaker service model that ships inside botocore, so a request this
module accepts is one AWS would accept, and an error quotes the same constraint AWS enforces.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import PlatformError
from .jobs import DEFAULT_INSTANCE_TYPE, DEFAULT_MAX_RUNTIME, DEFAULT_OUTPUT_PATH, DEFAULT_ROLE_ARN

__all__ = [
    "DEFAULT_ROLE_ARN",
    "FILE_SYSTEM_DATA_TYPE",
    "MAX_JOB_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "RESERVED_DIRS",
    "SIMULATED_FIELDS",
    "SIMULATED_NESTED",
    "ChannelSpec",
    "CheckpointSpec",
    "FileSystemSpec",
    "InstanceGroupSpec",
    "RequestError",
    "TrainingJobSpec",
    "channel_name_problem",
    "checkpoint_path_problem",
    "file_kind",
    "json_depth",
    "load_request",
    "parse_request",
    "training_instance_types",
    "unsimulated_nested",
    "validate_input",
    "validate_request",
]

DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"

#: Top-level request fields the local platform acts on; every other valid field is accepted and
#: reported once as "not simulated".
SIMULATED_FIELDS = frozenset(
    {
        "TrainingJobName",
        "AlgorithmSpecification",
        "HyperParameters",
        "Environment",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "CheckpointConfig",
        "EnableNetworkIsolation",
        "EnableManagedSpotTraining",
        "RetryStrategy",
        "RoleArn",
        "Tags",
    }
)


#: Nested fields the platform acts on, as dotted paths (list items without an index); a path covers its whole
#: subtree. Below a top-level field named here, every other field is accepted and named as not simulated
#: (e.g. ResourceConfig.VolumeKmsKeyId); a simulated top-level field not named here is simulated whole.
SIMULATED_NESTED = frozenset(
    {
        "AlgorithmSpecification.TrainingImage",
        "AlgorithmSpecification.TrainingInputMode",
        "AlgorithmSpecification.ContainerEntrypoint",
        "AlgorithmSpecification.ContainerArguments",
        "AlgorithmSpecification.MetricDefinitions",
        "InputDataConfig.ChannelName",
        "InputDataConfig.ContentType",
        "InputDataConfig.CompressionType",
        "InputDataConfig.RecordWrapperType",
        "InputDataConfig.InputMode",
        "InputDataConfig.ShuffleConfig",
        "InputDataConfig.DataSource.S3DataSource.S3DataType",
        "InputDataConfig.DataSource.S3DataSource.S3Uri",
        "InputDataConfig.DataSource.S3DataSource.S3DataDistributionType",
        "InputDataConfig.DataSource.S3DataSource.AttributeNames",
        "InputDataConfig.DataSource.S3DataSource.InstanceGroupNames",
        "InputDataConfig.DataSource.FileSystemDataSource",
        "OutputDataConfig.S3OutputPath",
        "OutputDataConfig.CompressionType",
        "ResourceConfig.InstanceType",
        "ResourceConfig.InstanceCount",
        "ResourceConfig.InstanceGroups",
        "ResourceConfig.VolumeSizeInGB",
        "ResourceConfig.KeepAlivePeriodInSeconds",
        "StoppingCondition.MaxRuntimeInSeconds",
        "CheckpointConfig.S3Uri",
        "CheckpointConfig.LocalPath",
    }
)


def unsimulated_nested(req: Mapping[str, Any]) -> list[str]:
    """The nested fields `req` sets that the platform accepts but ignores, as dotted paths, each once, sorted.

    StoppingCondition.MaxWaitTimeInSeconds counts as simulated only where EnableManagedSpotTraining is."""
    covered = set(SIMULATED_NESTED)
    if "EnableManagedSpotTraining" in SIMULATED_FIELDS:
        covered.add("StoppingCondition.MaxWaitTimeInSeconds")
    walked = {path.split(".")[0] for path in covered}
    found: set[str] = set()
    stack: list[tuple[str, Any]] = [(k, v) for k, v in req.items() if k in walked and k in SIMULATED_FIELDS]
    while stack:
        path, value = stack.pop()
        if path in covered:
            continue
        items = value if isinstance(value, list) else [value]
        dicts = [item for item in items if isinstance(item, Mapping)]
        if "." in path and not any(c.startswith(path + ".") for c in covered):
            found.add(path)
            continue
        for item in dicts:
            stack.extend((f"{path}.{key}", child) for key, child in item.items())
    return sorted(found)


class RequestError(PlatformError, ValueError):
    """A request AWS would reject: the message names the field, the value and the API limit."""


@dataclass(frozen=True)
class FileSystemSpec:
    """A channel's FileSystemDataSource (EFS or FSx for Lustre): SageMaker mounts the directory at the channel's
    path, read-only (`ro`) or read-write (`rw`); the local platform mounts a local directory in its place."""

    file_system_id: str
    file_system_type: str
    directory_path: str
    access_mode: str

    def describe(self) -> str:
        return f"{self.file_system_type} {self.file_system_id}:{self.directory_path or '/'} ({self.access_mode})"


#: ChannelSpec.s3_data_type of a FileSystemDataSource channel (no S3 data type applies).
FILE_SYSTEM_DATA_TYPE = "FileSystem"


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    s3_uri: str
    s3_data_type: str = "S3Prefix"
    distribution: str = "FullyReplicated"
    input_mode: str = "File"
    content_type: str | None = None
    compression: str = "None"
    record_wrapper: str = "None"
    instance_group_names: tuple[str, ...] = ()
    #: Set for a FileSystemDataSource channel (then `s3_uri` is empty).
    file_system: FileSystemSpec | None = None


@dataclass(frozen=True)
class CheckpointSpec:
    s3_uri: str
    local_path: str = DEFAULT_CHECKPOINT_PATH


@dataclass(frozen=True)
class InstanceGroupSpec:
    name: str
    instance_type: str
    instance_count: int


@dataclass(frozen=True)
class TrainingJobSpec:
    """A validated CreateTrainingJob request, in the terms the local platform acts on."""

    name: str
    image: str
    input_mode: str = "File"
    entrypoint: tuple[str, ...] | None = None
    arguments: tuple[str, ...] | None = None
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    channels: tuple[ChannelSpec, ...] = ()
    output_path: str = DEFAULT_OUTPUT_PATH
    instance_groups: tuple[InstanceGroupSpec, ...] = (
        InstanceGroupSpec("homogeneousCluster", DEFAULT_INSTANCE_TYPE, 1),
    )
    max_runtime_s: int = DEFAULT_MAX_RUNTIME
    checkpoint: CheckpointSpec | None = None
    network_isolation: bool = False
    #: OutputDataConfig.CompressionType: GZIP packs model.tar.gz, NONE uploads the files as they are (§11).
    output_compression: str = "GZIP"
    #: ResourceConfig.VolumeSizeInGB: the ML storage volume /opt/ml lives on (§11); None when not given.
    volume_size_gb: int | None = None
    #: ResourceConfig.KeepAlivePeriodInSeconds: a warm pool with its persistent cache (platform/warm_pool.py).
    keep_alive_s: int | None = None
    #: EnableManagedSpotTraining: the job can be interrupted and restarts itself (contract §11).
    managed_spot: bool = False
    #: StoppingCondition.MaxWaitTimeInSeconds (managed spot only): covers every attempt and the waits between.
    max_wait_s: int | None = None
    #: RetryStrategy.MaximumRetryAttempts: restarts after an InternalServerError (0: none).
    max_retry_attempts: int = 0
    role_arn: str = DEFAULT_ROLE_ARN
    not_simulated: tuple[str, ...] = ()
    request: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def instance_count(self) -> int:
        return sum(g.instance_count for g in self.instance_groups)

    @property
    def instance_type(self) -> str:
        return self.instance_groups[0].instance_type

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(f"algo-{i}" for i in range(1, self.instance_count + 1))


# --------------------------------------------------------------------------------------------
# Validation against the botocore service model


@lru_cache(maxsize=1)
def _request_shape() -> Any:
    import botocore.session  # lazy: loading botocore and its SageMaker model is slow; read once, on first use

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateTrainingJob").input_shape


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check(shape: Any, value: Any, where: str, errors: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            errors.append(f"{where}: expected an object, got {_show(value)}")
            return
        for name in shape.required_members:
            if name not in value:
                errors.append(f"{where}.{name}: required by the API but missing")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                known = ", ".join(sorted(shape.members))
                errors.append(f"{where}: unknown field {name!r} (valid fields: {known})")
                continue
            _check(member, member_value, f"{where}.{name}", errors)
        return
    if kind == "list":
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {_show(value)}")
            return
        _bounds(meta, len(value), where, "items", errors)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{where}[{i}]", errors)
        return
    if kind == "map":
        if not isinstance(value, Mapping):
            errors.append(f"{where}: expected an object, got {_show(value)}")
            return
        _bounds(meta, len(value), where, "entries", errors)
        for key, item in value.items():
            _check(shape.key, key, f"{where} key {_show(key)}", errors)
            _check(shape.value, item, f"{where}[{key!r}]", errors)
        return
    if kind == "string":
        if not isinstance(value, str):
            errors.append(f"{where}: expected a string, got {_show(value)}")
            return
        _bounds(meta, len(value), where, "characters", errors)
        enum = meta.get("enum")
        if enum and value not in enum:
            shown = ", ".join(enum) if len(enum) <= 12 else ", ".join(enum[:12]) + ", ..."
            errors.append(f"{where}: {_show(value)} is not one of the API's values ({shown})")
        pattern = meta.get("pattern")
        if pattern and _compiled(pattern).fullmatch(value) is None:
            errors.append(f"{where}: {_show(value)} does not match the API pattern {pattern}")
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{where}: expected an integer, got {_show(value)}")
            return
        if "min" in meta and value < meta["min"]:
            errors.append(f"{where}: {value} is below the API minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{where}: {value} is above the API maximum {meta['max']}")
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{where}: expected true or false, got {_show(value)}")
        return
    if kind in ("float", "double") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        errors.append(f"{where}: expected a number, got {_show(value)}")


# Java character classes the model uses, as Python character-class bodies.
_JAVA_CLASSES = {
    r"\p{Alnum}": "a-zA-Z0-9",
    r"\p{L}": "\\w",
    r"\p{N}": "\\d",
    r"\p{Z}": " \\u00a0\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000",
}


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        return re.compile(pattern, flags=re.DOTALL)
    except re.error:
        return re.compile(".*", flags=re.DOTALL)


def _bounds(meta: Mapping[str, Any], size: int, where: str, unit: str, errors: list[str]) -> None:
    if "min" in meta and size < meta["min"]:
        errors.append(f"{where}: {size} {unit}, the API minimum is {meta['min']}")
    if "max" in meta and size > meta["max"]:
        errors.append(f"{where}: {size} {unit}, the API maximum is {meta['max']}")


def training_instance_types() -> list[str]:
    """Every ResourceConfig.InstanceType the API model accepts."""
    return list(_request_shape().members["ResourceConfig"].members["InstanceType"].enum)


def validate_request(request: Mapping[str, Any]) -> list[str]:
    """Every way `request` breaks the CreateTrainingJob model, one readable line each."""
    errors: list[str] = []
    _check(_request_shape(), request, "CreateTrainingJobRequest", errors)
    return [e.replace("CreateTrainingJobRequest.", "", 1).replace("CreateTrainingJobRequest: ", "", 1) for e in errors]


_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def _input_shape(service: str, operation: str) -> Any:
    """The operation's input shape; each service's model is read once per process, however many callers race."""
    with _MODELS_LOCK:
        if service not in _MODELS:
            import botocore.session  # lazy: as in _request_shape

            _MODELS[service] = botocore.session.get_session().get_service_model(service)
        model = _MODELS[service]
    return model.operation_model(operation).input_shape


def validate_input(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """Every way `params` break the input of `service`'s `operation` in botocore's model, one line each
    (the same rules as `validate_request`, for any operation the served API answers)."""
    shape = _input_shape(service, operation)
    if shape is None:
        return [f"{operation} takes no parameters"] if params else []
    errors: list[str] = []
    _check(shape, params, shape.name, errors)
    return [e.replace(f"{shape.name}.", "", 1).replace(f"{shape.name}: ", "", 1) for e in errors]


# --------------------------------------------------------------------------------------------
# Parsing


#: Largest job file read: a CreateTrainingJob request at every API maximum is far smaller.
MAX_JOB_FILE_BYTES = 1 << 20
#: Deepest nesting of objects and lists a request may have (the API model's deepest shape is 6 levels).
MAX_JSON_DEPTH = 32

_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, for messages that refuse it."""
    if stat.S_ISDIR(mode):
        return "a directory"
    return next((word for test, word in _FILE_KINDS if test(mode)), "not a regular file")


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep `value`'s objects and lists nest, counted without recursion; stops once past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _read_job_file(p: Path) -> bytes:
    """The file's bytes, read only when it is a regular file under the size limit: a FIFO would block the
    read forever and /dev/zero would never end, so neither is opened for reading at all."""
    try:
        kind = os.stat(p).st_mode
    except FileNotFoundError:
        raise RequestError(f"job file {p} does not exist") from None
    except OSError as exc:
        raise RequestError(f"job file {p} cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(kind):
        raise RequestError(f"job file {p} is a directory; name the request's JSON file")
    if not stat.S_ISREG(kind):
        raise RequestError(f"job file {p} is {file_kind(kind)}, not a regular file; name the request's JSON file")
    too_big = (
        f"job file {p} is larger than {MAX_JOB_FILE_BYTES // 1024} KiB, the most a job file may hold; "
        "a CreateTrainingJob request is a few KiB: name the request's JSON file"
    )
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RequestError(f"job file {p} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        opened = os.fstat(f.fileno())
        if not stat.S_ISREG(opened.st_mode):  # replaced between the two looks
            raise RequestError(f"job file {p} is {file_kind(opened.st_mode)}, not a regular file")
        if opened.st_size > MAX_JOB_FILE_BYTES:
            raise RequestError(too_big)
        try:
            data = f.read(MAX_JOB_FILE_BYTES + 1)
        except OSError as exc:
            raise RequestError(f"job file {p} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_JOB_FILE_BYTES:
        raise RequestError(too_big)
    return data


def load_request(path: str | Path) -> dict[str, Any]:
    """Read a `--cli-input-json` request file: a regular file of at most `MAX_JOB_FILE_BYTES`, JSON nested at
    most `MAX_JSON_DEPTH` levels."""
    p = Path(path)
    raw = _read_job_file(p)
    too_deep = (
        f"job file {p} nests objects and lists deeper than {MAX_JSON_DEPTH} levels "
        "(a CreateTrainingJob request needs 6); name the request's JSON file"
    )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RequestError(f"job file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"job file {p} is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(too_deep) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RequestError(f"job file {p} is not a valid request: {str(exc).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise RequestError(f"job file {p} must hold a JSON object (a CreateTrainingJob request)")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise RequestError(too_deep)
    return data


def parse_request(
    request: Mapping[str, Any], *, image: str | None = None, hyperparameter_value_limit: int | None = None
) -> TrainingJobSpec:
    """Validate `request` against the API model and turn it into a spec.

    `image`, when given, replaces AlgorithmSpecification.TrainingImage (the image under test).
    `hyperparameter_value_limit` tightens the model's 2500 characters per value (the developer guide's
    prose says 256; which one AWS enforces is uncertain, so it is the user's choice).
    """
    if json_depth(request) > MAX_JSON_DEPTH:
        raise RequestError(
            f"invalid CreateTrainingJob request: objects and lists nest deeper than {MAX_JSON_DEPTH} levels"
        )
    req = copy.deepcopy(dict(request))
    if image is not None:
        req.setdefault("AlgorithmSpecification", {"TrainingInputMode": "File"})
        if isinstance(req["AlgorithmSpecification"], dict):
            req["AlgorithmSpecification"]["TrainingImage"] = image
    errors = validate_request(req)
    algo = req.get("AlgorithmSpecification") or {}
    if not errors and not algo.get("TrainingImage"):
        errors.append("AlgorithmSpecification.TrainingImage: required by the local platform (or --sm-image)")
    if not errors:
        errors.extend(_semantic_errors(req))
    if not errors and hyperparameter_value_limit is not None:
        errors.extend(
            f"HyperParameters[{key!r}]: {len(value)} characters, the limit in use is {hyperparameter_value_limit}"
            for key, value in (req.get("HyperParameters") or {}).items()
            if len(value) > hyperparameter_value_limit
        )
    if errors:
        more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:4])})" if len(errors) > 1 else ""
        raise RequestError(f"invalid CreateTrainingJob request: {errors[0]}{more}")

    mode = algo["TrainingInputMode"]
    channels = tuple(_channel(c, mode) for c in req.get("InputDataConfig", []))
    ckpt = req.get("CheckpointConfig")
    stopping = req.get("StoppingCondition") or {}
    not_simulated = sorted(k for k in req if k not in SIMULATED_FIELDS)
    if (req.get("ResourceConfig") or {}).get("VolumeSizeInGB") is not None:  # §11: checked only partly
        not_simulated.append(
            "ResourceConfig.VolumeSizeInGB beyond the staged input (writes during training are not capped)"
        )
    not_simulated += unsimulated_nested(req)
    resource = req.get("ResourceConfig") or {}
    if resource.get("KeepAlivePeriodInSeconds") and (
        req.get("EnableManagedSpotTraining") or resource.get("InstanceGroups")
    ):
        not_simulated.append(
            "ResourceConfig.KeepAlivePeriodInSeconds (no warm pool: the developer guide rules warm pools out with "
            "managed spot training and with heterogeneous clusters)"
        )
    return TrainingJobSpec(
        name=req["TrainingJobName"],
        image=algo["TrainingImage"],
        input_mode=mode,
        entrypoint=tuple(algo["ContainerEntrypoint"]) if "ContainerEntrypoint" in algo else None,
        arguments=tuple(algo["ContainerArguments"]) if "ContainerArguments" in algo else None,
        hyperparameters=dict(req.get("HyperParameters") or {}),
        environment=dict(req.get("Environment") or {}),
        channels=channels,
        output_path=req["OutputDataConfig"]["S3OutputPath"].rstrip("/"),
        instance_groups=_instance_groups(req.get("ResourceConfig") or {}),
        max_runtime_s=int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)),
        checkpoint=(CheckpointSpec(ckpt["S3Uri"], ckpt.get("LocalPath") or DEFAULT_CHECKPOINT_PATH) if ckpt else None),
        network_isolation=bool(req.get("EnableNetworkIsolation", False)),
        output_compression=str(req["OutputDataConfig"].get("CompressionType", "GZIP")),
        volume_size_gb=(req.get("ResourceConfig") or {}).get("VolumeSizeInGB"),
        keep_alive_s=(req.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds"),
        managed_spot=bool(req.get("EnableManagedSpotTraining", False)),
        max_wait_s=stopping.get("MaxWaitTimeInSeconds") if req.get("EnableManagedSpotTraining") else None,
        max_retry_attempts=int((req.get("RetryStrategy") or {}).get("MaximumRetryAttempts", 0)),
        role_arn=req["RoleArn"],
        not_simulated=tuple(not_simulated),
        request=req,
    )


_ENV_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_RUNTIME_LIMIT = 28 * 86400


def _spot_errors(req: Mapping[str, Any]) -> list[str]:
    """MaxWaitTimeInSeconds belongs to managed spot training, is required there and covers the runtime
    (the StoppingCondition API reference; contract.md §11)."""
    stopping = req.get("StoppingCondition") or {}
    max_wait = stopping.get("MaxWaitTimeInSeconds")
    runtime = stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    if not req.get("EnableManagedSpotTraining"):
        if max_wait is None:
            return []
        return [
            f"StoppingCondition.MaxWaitTimeInSeconds ({max_wait}) is only for managed spot training: "
            "set EnableManagedSpotTraining to true, or remove MaxWaitTimeInSeconds"
        ]
    if max_wait is None or max_wait < runtime:
        seen = "missing" if max_wait is None else f"{max_wait}"
        return [
            f"StoppingCondition.MaxWaitTimeInSeconds: {seen}; with EnableManagedSpotTraining it must be present and "
            f">= MaxRuntimeInSeconds ({runtime}), since it covers the run and the waits for spot capacity"
        ]
    return []


def _semantic_errors(req: Mapping[str, Any]) -> list[str]:
    """Limits AWS enforces server-side that the model's shapes do not carry (contract.md §1, §4, §5, §7)."""
    errors: list[str] = []
    algo = req["AlgorithmSpecification"]
    for key in ("ContainerEntrypoint", "ContainerArguments"):
        for i, item in enumerate(algo.get(key, [])):
            if len(item) > 256:
                errors.append(f"AlgorithmSpecification.{key}[{i}]: {len(item)} characters, the limit is 256")
    for key, _value in (req.get("Environment") or {}).items():
        if not _ENV_KEY.fullmatch(key):
            errors.append(f"Environment key {key!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
    runtime = (req.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    if runtime is not None and runtime > MAX_RUNTIME_LIMIT:
        errors.append(
            f"StoppingCondition.MaxRuntimeInSeconds: {runtime} is above the limit {MAX_RUNTIME_LIMIT} (28 days)"
        )
    errors.extend(_spot_errors(req))
    first: dict[str, int] = {}
    for i, channel in enumerate(req.get("InputDataConfig", [])):
        name = channel["ChannelName"]
        if name in (".", ".."):
            errors.append(f"InputDataConfig[{i}].ChannelName: {channel_name_problem(name)}")
        if name in first:
            errors.append(
                f"InputDataConfig[{first[name]}] and InputDataConfig[{i}] are both channel {name!r}: "
                "channel names must be unique; rename or remove one"
            )
        first.setdefault(name, i)
    ckpt = req.get("CheckpointConfig") or {}
    local_path = ckpt.get("LocalPath")
    if local_path:
        problem = checkpoint_path_problem(local_path)
        if problem:
            errors.append(f"CheckpointConfig.LocalPath: {problem}")
    for i, channel in enumerate(req.get("InputDataConfig", [])):
        errors.extend(_data_source_errors(req, i, channel))
    resource = req.get("ResourceConfig") or {}
    if resource.get("InstanceGroups") and ("InstanceType" in resource or "InstanceCount" in resource):
        errors.append("ResourceConfig: set either InstanceGroups or InstanceType/InstanceCount, not both")
    if not resource.get("InstanceGroups") and resource.get("InstanceCount", 1) < 1:
        errors.append(f"ResourceConfig.InstanceCount: {resource.get('InstanceCount')} is below 1")
    groups = resource.get("InstanceGroups") or []
    if groups and sum(int(g.get("InstanceCount", 0)) for g in groups) < 1:
        errors.append("ResourceConfig.InstanceGroups: the groups' InstanceCount add up to 0; at least 1 instance")
    return errors


def _data_source_errors(req: Mapping[str, Any], i: int, channel: Mapping[str, Any]) -> list[str]:
    """One data source per channel; a FileSystemDataSource needs the job in a VPC (the developer guide's "Access
    training data": the job must connect to a VPC to reach EFS or FSx) and is mounted, so File mode only here."""
    where = f"InputDataConfig[{i}].DataSource"
    kinds = sorted(channel["DataSource"])
    if kinds == ["S3DataSource"]:
        return []
    if len(kinds) != 1:
        return [f"{where}: set exactly one data source (got {', '.join(kinds) or 'none'})"]
    if kinds != ["FileSystemDataSource"]:
        return [f"{where}: {kinds[0]} is not simulated (S3DataSource and FileSystemDataSource are)"]
    errors = []
    if not (req.get("VpcConfig") or {}).get("Subnets"):
        errors.append(
            f"{where}.FileSystemDataSource: a job reads EFS or FSx for Lustre only from inside a VPC; "
            "add VpcConfig (SecurityGroupIds, Subnets) as the job needs on SageMaker"
        )
    mode = channel.get("InputMode") or req["AlgorithmSpecification"].get("TrainingInputMode", "File")
    if mode != "File":
        errors.append(
            f"{where}.FileSystemDataSource: input mode {mode}: the local platform mounts a file system channel "
            "only in File mode (what SageMaker does in the other modes is not documented); set InputMode File"
        )
    return errors


#: /opt/ml directories the platform provides (contract.md §1, §3) and the image's code directory: a checkpoint
#: directory at, above or inside one would hide or replace what the platform or the image put there.
RESERVED_DIRS = ("/opt/ml/input", "/opt/ml/model", "/opt/ml/output", "/opt/ml/code")
#: Kernel filesystems the engine itself mounts in every container.
_KERNEL_DIRS = ("/proc", "/sys", "/dev")


def checkpoint_path_problem(path: str) -> str | None:
    """Why `path` cannot be a container's checkpoint directory (CheckpointConfig.LocalPath), or None."""
    fix = f"use an absolute directory of its own, e.g. {DEFAULT_CHECKPOINT_PATH} (the default)"
    if not path.startswith("/"):
        return f"{path!r} is a relative path; {fix}"
    if any(ord(c) < 32 or c == ":" for c in path):
        return f"{path!r} holds ':' or a control character, which the engine's mounts cannot carry; {fix}"
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return f"{path!r} holds '.' or '..'; {fix}"
    clean = "/" + "/".join(parts)
    if clean == "/":
        return f"'/' would replace the container's whole filesystem; {fix}"
    for reserved in RESERVED_DIRS:
        if clean == reserved or clean.startswith(reserved + "/"):
            return f"{path!r} is inside {reserved}, which the platform (or the image's code) owns; {fix}"
        if reserved.startswith(clean + "/"):
            return f"{path!r} would hide {reserved}, which the platform (or the image's code) owns; {fix}"
    for kernel in _KERNEL_DIRS:
        if clean == kernel or clean.startswith(kernel + "/"):
            return f"{path!r} is inside {kernel}, a kernel filesystem the engine mounts; {fix}"
    return None


def channel_name_problem(name: str) -> str | None:
    """Why `name` cannot be a ChannelName (the API model's length and pattern, and not '.' or '..', which
    would name /opt/ml/input/data or /opt/ml/input themselves), or None."""
    shape = _request_shape().members["InputDataConfig"].member.members["ChannelName"]
    meta = shape.metadata
    low, high, pattern = meta.get("min", 1), meta.get("max", 64), meta.get("pattern", ".*")
    if not low <= len(name) <= high or _compiled(pattern).fullmatch(name) is None:
        return f"{name!r} is not a channel name: {low}-{high} characters matching the API pattern {pattern}"
    if name in (".", ".."):
        return (
            f"{name!r} would be /opt/ml/input/data/{name} itself, not a channel directory in it; "
            "name the channel, e.g. train"
        )
    return None


def _channel(raw: Mapping[str, Any], job_mode: str) -> ChannelSpec:
    fs = raw["DataSource"].get("FileSystemDataSource")
    if fs is not None:
        return ChannelSpec(
            name=raw["ChannelName"],
            s3_uri="",
            s3_data_type=FILE_SYSTEM_DATA_TYPE,
            input_mode=raw.get("InputMode", job_mode),
            content_type=raw.get("ContentType"),
            compression=raw.get("CompressionType", "None"),
            record_wrapper=raw.get("RecordWrapperType", "None"),
            file_system=FileSystemSpec(
                fs["FileSystemId"], fs["FileSystemType"], fs["DirectoryPath"], fs["FileSystemAccessMode"]
            ),
        )
    s3 = raw["DataSource"]["S3DataSource"]
    return ChannelSpec(
        name=raw["ChannelName"],
        s3_uri=s3["S3Uri"],
        s3_data_type=s3["S3DataType"],
        distribution=s3.get("S3DataDistributionType", "FullyReplicated"),
        input_mode=raw.get("InputMode", job_mode),
        content_type=raw.get("ContentType"),
        compression=raw.get("CompressionType", "None"),
        record_wrapper=raw.get("RecordWrapperType", "None"),
        instance_group_names=tuple(s3.get("InstanceGroupNames", ())),
    )


def _instance_groups(resource: Mapping[str, Any]) -> tuple[InstanceGroupSpec, ...]:
    groups: Sequence[Mapping[str, Any]] = resource.get("InstanceGroups") or ()
    if groups:
        return tuple(
            InstanceGroupSpec(g["InstanceGroupName"], g["InstanceType"], int(g["InstanceCount"])) for g in groups
        )
    return (
        InstanceGroupSpec(
            "homogeneousCluster",
            resource.get("InstanceType", DEFAULT_INSTANCE_TYPE),
            int(resource.get("InstanceCount", 1)),
        ),
    )
