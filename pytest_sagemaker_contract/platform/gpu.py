"""GPUs for training containers: what the host offers, and what one host of an instance type is given.

SageMaker exposes every GPU of the instance to the container (contract §8); the driver comes from the
host, never the image. Locally there are three ways to do that, found by `detect`:

- the NVIDIA container toolkit (a registered `nvidia` runtime, as `docker run --gpus` needs), or a
  CDI spec for `nvidia.com/gpu`: a DeviceRequest, and the toolkit injects driver files itself;
- neither, but the driver is installed: pass the `/dev/nvidia*` nodes through and mount the driver
  directory read-only (`devices` mode). Nothing is added to the container's environment, as
  SageMaker adds nothing: images built on nvidia/cuda already look in /usr/local/nvidia/{bin,lib64}.

Parsing is kept apart from the reads (`docker info`, /dev, the CDI directories, `nvidia-smi -L`) so it
can be tested on recorded data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CDI_DIRS",
    "DRIVER_DIRS",
    "GPU_COUNT",
    "GPU_MODES",
    "GpuDetection",
    "GpuPlan",
    "detect",
    "explain",
    "gpu_device_names",
    "gpu_plan",
    "instance_gpus",
    "merge_host_config",
    "parse_runtimes",
    "parse_smi_list",
    "spec_declares_gpu",
]

GPU_MODES = ("auto", "all", "none", "devices")
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
#: Where a driver installed for containers lives (the nvidia-docker 1 volume layout; also the lent GPU machines').
DRIVER_DIRS = ("/usr/local/nvidia",)
#: Directories that hold the image's own files too: mounting one over the image's would break it.
_SYSTEM_DIRS = frozenset({"/", "/usr", "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local", "/opt"})
#: Character devices the driver needs besides the per-GPU nodes, passed through when present.
CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_GPU_NODE = re.compile(r"nvidia(\d+)")


def _family(prefix: str, sizes: Mapping[str, int]) -> dict[str, int]:
    return {f"ml.{prefix}.{size}": n for size, n in sizes.items()}


_G5_LIKE = {
    "xlarge": 1,
    "2xlarge": 1,
    "4xlarge": 1,
    "8xlarge": 1,
    "16xlarge": 1,
    "12xlarge": 4,
    "24xlarge": 4,
    "48xlarge": 8,
}

#: GPUs per instance of SageMaker's GPU training instance types (any type not listed has none).
GPU_COUNT: Mapping[str, int] = {
    **_family("p2", {"xlarge": 1, "8xlarge": 8, "16xlarge": 16}),
    **_family("p3", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
    "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
    "ml.p5.4xlarge": 1,
    **_family("g4dn", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4}),
    **_family("g5", _G5_LIKE),
    **_family("g6", _G5_LIKE),
    **_family("g6e", _G5_LIKE),
}


def instance_gpus(instance_type: str) -> int:
    """GPUs per instance of `instance_type`; 0 for CPU (and accelerator-but-not-GPU) types."""
    return GPU_COUNT.get(instance_type, 0)


# ------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class GpuDetection:
    """What the host offers containers, and one line saying what that means for the GPU checks."""

    runtimes: tuple[str, ...] = ()
    nvidia_runtime: bool = False
    default_runtime: str | None = None
    cdi_gpu: bool = False
    #: Host paths of the per-GPU nodes (/dev/nvidia<N>), sorted by N.
    devices: tuple[str, ...] = ()
    #: Host paths of the driver's other nodes that exist (nvidiactl, nvidia-uvm, ...).
    control_devices: tuple[str, ...] = ()
    #: `nvidia-smi -L` lines on the host (empty when it is absent or failed).
    smi_gpus: tuple[str, ...] = ()
    #: The host driver directory `devices` mode mounts read-only at the same path (None: none usable).
    driver_dir: str | None = None
    reason: str = ""

    @property
    def toolkit(self) -> bool:
        """The engine can give GPUs by DeviceRequest (NVIDIA runtime or CDI), injecting the driver itself."""
        return self.nvidia_runtime or self.cdi_gpu

    @property
    def host_gpus(self) -> int:
        """GPUs on this host: device nodes, else what nvidia-smi lists."""
        return len(self.devices) or len(self.smi_gpus)


def parse_runtimes(info: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The runtime names and the default runtime from a `docker info` (client.info()) dict."""
    runtimes = tuple(sorted((info.get("Runtimes") or {}).keys()))
    default = info.get("DefaultRuntime")
    return runtimes, str(default) if default else None


def spec_declares_gpu(text: str) -> bool:
    """Does a CDI spec (YAML or JSON) declare kind nvidia.com/gpu? A text match, not a full parse."""
    return re.search(r"""["']?kind["']?\s*:\s*["']?nvidia\.com/gpu["']?\s*(?:[,}\n]|$)""", text) is not None


def gpu_device_names(names: Iterable[str]) -> list[str]:
    """The per-GPU node names (nvidia<N>) among a /dev listing, sorted by N."""
    found = [(int(m.group(1)), name) for name in names if (m := _GPU_NODE.fullmatch(name))]
    return [name for _n, name in sorted(found)]


def parse_smi_list(text: str) -> list[str]:
    """The GPU lines of `nvidia-smi -L` ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)")."""
    return [line.strip() for line in text.splitlines() if re.match(r"\s*GPU \d+:", line)]


def explain(
    *,
    runtimes: Sequence[str],
    nvidia_runtime: bool,
    default_runtime: str | None,
    cdi_gpu: bool,
    cdi_dirs: Sequence[str],
    devices: Sequence[str],
    smi_gpus: Sequence[str],
    driver_dir: str | None,
) -> str:
    """One line: what was found, and whether (and how) GPU checks can run."""
    parts = []
    if nvidia_runtime:
        default = " (the default)" if default_runtime == "nvidia" else ""
        parts.append(f"NVIDIA runtime registered{default} (runtimes: {', '.join(runtimes)})")
    else:
        parts.append(f"no NVIDIA runtime registered (runtimes: {', '.join(runtimes) or 'none'})")
    if cdi_gpu:
        parts.append("a CDI spec for nvidia.com/gpu")
    else:
        parts.append(f"no CDI spec for nvidia.com/gpu in {', '.join(cdi_dirs)}")
    if devices:
        names = [os.path.basename(d) for d in devices]
        shown = names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
        parts.append(f"{len(devices)} GPU device node(s) ({shown})")
    else:
        parts.append("no /dev/nvidia<N> devices")
    if smi_gpus:
        parts.append(f"nvidia-smi lists {len(smi_gpus)} GPU(s)")
    if driver_dir:
        parts.append(f"driver at {driver_dir}")
    found = ", ".join(parts)
    if nvidia_runtime or cdi_gpu:
        return f"{found}: GPU checks run (DeviceRequest, as `docker run --gpus`)"
    if devices:
        return (
            f"{found}: --sm-gpus auto gives no GPUs without the NVIDIA container toolkit; pass --sm-gpus devices "
            "to pass the device nodes through" + ("" if driver_dir else " (no driver directory found to mount)")
        )
    return f"{found}: GPU checks skipped"


def detect(
    info: Mapping[str, Any],
    dev_dir: str | os.PathLike[str] = "/dev",
    cdi_dirs: Sequence[str | os.PathLike[str]] = CDI_DIRS,
    nvidia_smi: str | None = shutil.which("nvidia-smi"),
    driver_dirs: Sequence[str | os.PathLike[str]] = DRIVER_DIRS,
) -> GpuDetection:
    """Read the host: `info` is docker-py's `client.info()`; the other arguments say where to look."""
    runtimes, default = parse_runtimes(info)
    nvidia_runtime = "nvidia" in runtimes
    cdi_gpu = any(spec_declares_gpu(text) for text in _cdi_specs(cdi_dirs))
    dev = Path(dev_dir)
    listing = _listdir(dev)
    devices = tuple(str(dev / name) for name in gpu_device_names(listing))
    control = tuple(str(dev / name) for name in CONTROL_DEVICES if name in listing)
    smi_gpus = tuple(_smi_list(nvidia_smi)) if nvidia_smi else ()
    driver_dir = _driver_dir(driver_dirs, nvidia_smi)
    reason = explain(
        runtimes=runtimes,
        nvidia_runtime=nvidia_runtime,
        default_runtime=default,
        cdi_gpu=cdi_gpu,
        cdi_dirs=[os.fspath(d) for d in cdi_dirs],
        devices=devices,
        smi_gpus=smi_gpus,
        driver_dir=driver_dir,
    )
    return GpuDetection(runtimes, nvidia_runtime, default, cdi_gpu, devices, control, smi_gpus, driver_dir, reason)


def _listdir(path: Path) -> set[str]:
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def _cdi_specs(dirs: Sequence[str | os.PathLike[str]]) -> Iterable[str]:
    for directory in dirs:
        root = Path(directory)
        for name in sorted(_listdir(root)):
            if name.endswith((".yaml", ".yml", ".json")):
                try:
                    yield (root / name).read_text(errors="replace")
                except OSError:
                    continue


def _smi_list(nvidia_smi: str) -> list[str]:
    try:
        done = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_smi_list(done.stdout) if done.returncode == 0 else []


def _driver_dir(candidates: Sequence[str | os.PathLike[str]], nvidia_smi: str | None) -> str | None:
    """A directory holding the driver's user-space files that can be mounted without hiding the image's own.

    The dedicated layout (`<dir>/bin/nvidia-smi`, `<dir>/lib64/libcuda.so*`) first; then the parent of the
    `bin/` holding nvidia-smi, unless that is a system directory such as /usr.
    """
    for candidate in candidates:
        root = Path(candidate)
        if (root / "bin" / "nvidia-smi").exists() or any(
            any((root / lib).glob("libcuda.so*")) for lib in ("lib64", "lib")
        ):
            return str(root)
    if nvidia_smi:
        bindir = Path(os.path.realpath(nvidia_smi)).parent
        if bindir.name == "bin" and str(bindir.parent) not in _SYSTEM_DIRS:
            return str(bindir.parent)
    return None


# ------------------------------------------------------------------------------------------
# The plan for one host


@dataclass(frozen=True)
class GpuPlan:
    """What one host of `instance_type` is given under `mode`, and the docker-py host-config to do it."""

    mode: str
    instance_type: str
    #: GPUs the instance type has (under `all` on a type without any: every host GPU).
    count: int
    #: GPUs the container gets: `count` capped at the host's.
    given: int
    #: Why `given` differs from `count`, or what the container misses (empty when nothing to say).
    note: str = ""
    #: Extra keyword arguments for docker-py's `APIClient.create_host_config` (`binds` included).
    host_config: dict[str, Any] = field(default_factory=dict)
    #: In `devices` mode, the driver directory mounted read-only (nvidia-smi is `<driver_dir>/bin/nvidia-smi`).
    driver_dir: str | None = None


def gpu_plan(instance_type: str, mode: str, detection: GpuDetection) -> GpuPlan:
    """The GPUs for one host: the instance type's count, capped at the host's, given the way `mode` says.

    auto: by DeviceRequest when the NVIDIA runtime or CDI is there, else none. all: as auto, but a type
    with no GPUs gets every host GPU. none: no GPUs. devices: device nodes plus the driver directory
    read-only, for hosts with a driver but no container toolkit.
    """
    if mode not in GPU_MODES:
        raise ValueError(f"GPU mode {mode!r}: expected one of {', '.join(GPU_MODES)}")
    wanted = instance_gpus(instance_type)
    if mode == "none":
        return GpuPlan(mode, instance_type, wanted, 0, "--sm-gpus none: no GPUs given" if wanted else "")
    if mode == "all" and wanted == 0:
        wanted = detection.host_gpus
    if wanted == 0:
        return GpuPlan(mode, instance_type, 0, 0, f"instance type {instance_type} has no GPUs")
    if mode == "devices":
        return _devices_plan(instance_type, wanted, detection)
    if not detection.toolkit:
        return GpuPlan(mode, instance_type, wanted, 0, detection.reason)
    host = detection.host_gpus
    given = min(wanted, host) if host else wanted
    note = _capped(instance_type, wanted, given)
    if detection.nvidia_runtime:
        request: dict[str, Any] = {"driver": "nvidia", "count": given, "capabilities": [["gpu"]]}
    else:
        request = {"driver": "cdi", "device_ids": [f"nvidia.com/gpu={i}" for i in range(given)]}
    return GpuPlan(mode, instance_type, wanted, given, note, {"device_requests": [request]})


def _devices_plan(instance_type: str, wanted: int, detection: GpuDetection) -> GpuPlan:
    given = min(wanted, len(detection.devices))
    if given == 0:
        return GpuPlan("devices", instance_type, wanted, 0, f"--sm-gpus devices: {detection.reason}")
    nodes = [*detection.devices[:given], *detection.control_devices]
    devices = [f"{node}:/dev/{os.path.basename(node)}:rwm" for node in nodes]
    config: dict[str, Any] = {"devices": devices}
    notes = [_capped(instance_type, wanted, given)]
    if detection.driver_dir:
        config["binds"] = {detection.driver_dir: {"bind": detection.driver_dir, "mode": "ro"}}
    else:
        notes.append("no driver directory found to mount: the container sees device nodes but no nvidia-smi/libcuda")
    note = "; ".join(n for n in notes if n)
    return GpuPlan("devices", instance_type, wanted, given, note, config, detection.driver_dir)


def _capped(instance_type: str, wanted: int, given: int) -> str:
    if given >= wanted:
        return ""
    return f"{instance_type} has {wanted} GPUs, this host {given}: the container gets {given}"


def merge_host_config(
    binds: Mapping[str, Mapping[str, str]], plan: GpuPlan
) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """Split a plan's host-config into (binds merged with the job's own, the other create_host_config kwargs).

    A job bind on the same host path wins: the driver directory never replaces a /opt/ml mount.
    """
    extra = dict(plan.host_config)
    merged = {k: dict(v) for k, v in extra.pop("binds", {}).items()}
    merged.update({k: dict(v) for k, v in binds.items()})
    return merged, extra
