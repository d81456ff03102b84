"""The /opt/ml tree of one host and the config files SageMaker writes before the container starts.

contract.md §2 (config files), §3 (directories), §4 (environment).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import ChannelSpec, TrainingJobSpec
from .untrusted import LinkRefused, read_text
from .warm_pool import WARM_POOL_CACHE, WARM_POOL_ENV, warm_pool_eligible

__all__ = [
    "OPT_ML",
    "PLATFORM_DIRS",
    "Host",
    "HostLayout",
    "assign_hosts",
    "container_environment",
    "file_system_binds",
    "hyperparameters_json",
    "input_data_config_json",
    "instance_hostname",
    "read_only_file_systems",
    "resource_config_json",
    "s3_client_environment",
    "training_job_arn",
]

OPT_ML = "/opt/ml"
#: The directories the platform provides (and so mounts over) under /opt/ml.
PLATFORM_DIRS = ("input", "model", "output", "checkpoints")
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Host:
    name: str
    group: str
    instance_type: str


def assign_hosts(spec: TrainingJobSpec) -> tuple[Host, ...]:
    """algo-1..N, handed out to the instance groups in request order."""
    hosts: list[Host] = []
    for group in spec.instance_groups:
        for _ in range(group.instance_count):
            hosts.append(Host(f"algo-{len(hosts) + 1}", group.name, group.instance_type))
    return tuple(hosts)


def instance_hostname(job_key: str, index: int) -> str:
    """The host name of host `index` of one job, as an EC2 instance names itself (`ip-10-0-x-y`).

    On SageMaker gethostname() is the instance's own name, not algo-N (contract §7, §11): an image must
    find its algo name in resourceconfig.json's current_host. Distinct per host of a job; `job_key` (the
    job's random suffix) varies it between jobs, so no image can rely on a fixed one either."""
    seed = int(hashlib.sha256(job_key.encode()).hexdigest()[:8], 16)
    value = 256 + (seed + index) % (254 * 256)
    return f"ip-10-0-{value >> 8}-{value & 255}"


def channels_for(spec: TrainingJobSpec, host: Host) -> tuple[ChannelSpec, ...]:
    """A channel reaches only the instance groups it names (all of them when it names none)."""
    return tuple(c for c in spec.channels if not c.instance_group_names or host.group in c.instance_group_names)


def file_system_binds(spec: TrainingJobSpec, host: Host, local: Mapping[str, Path]) -> dict[str, dict[str, str]]:
    """FileSystemDataSource channels: the local directory standing in for the file system, mounted at the channel's
    path read-only or read-write per FileSystemAccessMode, as SageMaker mounts EFS or FSx (no copy: writes under
    `rw` reach the directory itself, as they reach the file system on SageMaker)."""
    binds: dict[str, dict[str, str]] = {}
    for channel in channels_for(spec, host):
        source = local.get(channel.name)
        if channel.file_system is not None and source is not None:
            binds[str(source)] = {
                "bind": f"{OPT_ML}/input/data/{channel.name}",
                "mode": channel.file_system.access_mode,
            }
    return binds


def read_only_file_systems(spec: TrainingJobSpec, host: Host) -> tuple[str, ...]:
    """The host's FileSystemDataSource channels mounted read-only (`ro`)."""
    return tuple(
        c.name for c in channels_for(spec, host) if c.file_system is not None and c.file_system.access_mode == "ro"
    )


def training_job_arn(spec: TrainingJobSpec, region: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{spec.name.lower()}"


def hyperparameters_json(spec: TrainingJobSpec) -> dict[str, str]:
    return dict(spec.hyperparameters)


def resource_config_json(spec: TrainingJobSpec, host: Host) -> dict[str, Any]:
    hosts = assign_hosts(spec)
    groups = []
    for group in spec.instance_groups:
        groups.append(
            {
                "instance_group_name": group.name,
                "instance_type": group.instance_type,
                "hosts": [h.name for h in hosts if h.group == group.name],
            }
        )
    return {
        "current_host": host.name,
        "current_instance_type": host.instance_type,
        "current_group_name": host.group,
        "hosts": sorted((h.name for h in hosts), key=lambda n: int(n.split("-")[1])),
        "instance_groups": groups,
        "network_interface_name": "eth0",
    }


def input_data_config_json(spec: TrainingJobSpec, host: Host) -> dict[str, dict[str, str]]:
    config: dict[str, dict[str, str]] = {}
    for channel in channels_for(spec, host):
        entry: dict[str, str] = {}
        if channel.content_type is not None:
            entry["ContentType"] = channel.content_type
        entry["TrainingInputMode"] = channel.input_mode
        entry["S3DistributionType"] = channel.distribution
        entry["RecordWrapperType"] = channel.record_wrapper
        if channel.compression != "None":
            entry["CompressionType"] = channel.compression
        config[channel.name] = entry
    return config


def container_environment(spec: TrainingJobSpec, region: str, set_region: bool) -> dict[str, str]:
    """What the platform itself sets; `SM_*` variables belong to the toolkit inside the image (§4)."""
    env = {"TRAINING_JOB_NAME": spec.name, "TRAINING_JOB_ARN": training_job_arn(spec, region)}
    if set_region:
        env["AWS_REGION"] = region
    if warm_pool_eligible(spec):
        env[WARM_POOL_ENV] = WARM_POOL_CACHE
    env.update(spec.environment)
    return env


def s3_client_environment(endpoint: str) -> dict[str, str]:
    """How a container that calls S3 itself reaches the platform's S3 (only without network isolation).

    boto3 reads AWS_ENDPOINT_URL_S3, the sagemaker-training toolkit reads S3_ENDPOINT_URL. No keys and no
    AWS_DEFAULT_REGION: real jobs get neither; the role's credentials come from the container credentials
    endpoint (credentials.py) and the region from AWS_REGION (contract §11). Nothing of the host's own AWS
    environment is passed.
    """
    return {"AWS_ENDPOINT_URL_S3": endpoint, "S3_ENDPOINT_URL": endpoint}


class HostLayout:
    """The host-side directories bind-mounted as /opt/ml/{input,model,output,checkpoints}.

    Only the platform's own directories are mounted, never /opt/ml itself: what an image ships
    elsewhere under /opt/ml (e.g. /opt/ml/code, as AWS's toolkit docs do) stays visible, as on SageMaker.
    """

    def __init__(self, root: Path, checkpoint_local_path: str | None) -> None:
        self.root = root
        self.input = root / "input"
        self.config = self.input / "config"
        self.data = self.input / "data"
        self.model = root / "model"
        self.output = root / "output"
        self.output_data = self.output / "data"
        self.checkpoints = root / "checkpoints" if checkpoint_local_path else None
        self.checkpoint_local_path = checkpoint_local_path

    def create(self) -> None:
        for path in (self.config, self.data, self.model, self.output_data, self.checkpoints):
            if path is not None:
                path.mkdir(parents=True, exist_ok=True)
        # Images that run as a non-root USER must still be able to write their artifacts.
        for path in (self.model, self.output, self.output_data, self.checkpoints, self.data, self.input):
            if path is not None:
                os.chmod(path, 0o777)

    def write_config(self, spec: TrainingJobSpec, host: Host) -> None:
        files: dict[str, Any] = {
            "hyperparameters.json": hyperparameters_json(spec),
            "resourceconfig.json": resource_config_json(spec, host),
            "inputdataconfig.json": input_data_config_json(spec, host),
        }
        if spec.checkpoint is not None:
            files["checkpointconfig.json"] = {
                "LocalPath": spec.checkpoint.local_path,
                "S3Uri": spec.checkpoint.s3_uri,
            }
        for name, content in files.items():
            (self.config / name).write_text(json.dumps(content))

    def channel_dir(self, channel: str) -> Path:
        return self.data / channel

    def binds(
        self, read_only_channels: tuple[str, ...] = (), sources: Mapping[str, Path] | None = None
    ) -> dict[str, dict[str, str]]:
        """Host path -> container mount. A FastFile channel is read-only: its staged directory, or the local
        source directory itself when one stands in for the channel (`sources`), mounted without a copy."""
        binds = {
            str(self.input): {"bind": f"{OPT_ML}/input", "mode": "rw"},
            str(self.model): {"bind": f"{OPT_ML}/model", "mode": "rw"},
            str(self.output): {"bind": f"{OPT_ML}/output", "mode": "rw"},
        }
        for name in read_only_channels:
            source = (sources or {}).get(name)
            host_dir = source if source is not None and source.is_dir() else self.channel_dir(name)
            binds[str(host_dir)] = {"bind": f"{OPT_ML}/input/data/{name}", "mode": "ro"}
        if self.checkpoints is not None and self.checkpoint_local_path is not None:
            binds[str(self.checkpoints)] = {"bind": self.checkpoint_local_path, "mode": "rw"}
        return binds

    def failure_text(self) -> str | None:
        """The first 1024 characters of /opt/ml/output/failure: they become FailureReason (§3).

        Read through `untrusted.read_text`: a failure file that is a link is never followed (its target
        would be a file of this machine, not of the container)."""
        try:
            return read_text(self.output, "failure", 1024)
        except LinkRefused as exc:
            return (
                f"/opt/ml/output/failure was a symbolic link (to {exc.target}) and was not followed: the platform "
                "never reads through a link the image made; write the failure reason into the file itself"
            )
