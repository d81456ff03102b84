"""GPU detection from recorded `docker info` data and stand-in files, the instance table, and the plans."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.platform.gpu import (
    GPU_COUNT,
    GpuDetection,
    detect,
    gpu_device_names,
    gpu_plan,
    instance_gpus,
    merge_host_config,
    parse_smi_list,
    spec_declares_gpu,
)

#: Runtimes as `docker info` reports them on this project's machines (engine 20.10, no toolkit).
RUNC_ONLY: dict[str, Any] = {
    "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "io.containerd.runtime.v1.linux": {"path": "runc"}},
    "DefaultRuntime": "runc",
}
#: After `nvidia-ctk runtime configure --runtime=docker`.
NVIDIA_REGISTERED: dict[str, Any] = {
    "Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "runc": {"path": "runc"}},
    "DefaultRuntime": "runc",
}
NVIDIA_DEFAULT: dict[str, Any] = {**NVIDIA_REGISTERED, "DefaultRuntime": "nvidia"}

CDI_SPEC_YAML = """---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
"""


def stand_in_dev(root: Path, names: list[str]) -> Path:
    """A /dev stand-in holding empty files named like the driver's nodes (detection only lists names)."""
    dev = root / "dev"
    dev.mkdir()
    for name in names:
        (dev / name).touch()
    return dev


def host(tmp_path: Path, info: dict[str, Any], devs: list[str] | None = None, **kw: Any) -> GpuDetection:
    """Detection on tmp_path stand-ins only: never the real /dev, /etc/cdi or nvidia-smi."""
    dev = stand_in_dev(tmp_path, devs or [])
    kw.setdefault("cdi_dirs", (str(tmp_path / "cdi"),))
    kw.setdefault("driver_dirs", (str(tmp_path / "nvidia"),))
    return detect(info, dev_dir=dev, nvidia_smi=kw.pop("nvidia_smi", None), **kw)


# -- detection ---------------------------------------------------------------------------------------------


def test_runc_only_host_says_what_it_looked_for(tmp_path: Path) -> None:
    d = host(tmp_path, RUNC_ONLY, ["null", "tty"])
    assert (d.nvidia_runtime, d.cdi_gpu, d.devices, d.driver_dir, d.toolkit) == (False, False, (), None, False)
    assert d.runtimes == ("io.containerd.runc.v2", "io.containerd.runtime.v1.linux")
    assert d.reason.startswith("no NVIDIA runtime registered (runtimes: io.containerd.runc.v2, ")
    assert "no CDI spec for nvidia.com/gpu in " in d.reason
    assert d.reason.endswith("no /dev/nvidia<N> devices: GPU checks skipped")


def test_registered_nvidia_runtime(tmp_path: Path) -> None:
    d = host(tmp_path, NVIDIA_REGISTERED, ["nvidia1", "nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-modeset"])
    assert (d.nvidia_runtime, d.toolkit, d.default_runtime) == (True, True, "runc")
    assert [os.path.basename(p) for p in d.devices] == ["nvidia0", "nvidia1"]
    assert [os.path.basename(p) for p in d.control_devices] == ["nvidiactl", "nvidia-uvm", "nvidia-modeset"]
    assert d.host_gpus == 2
    assert d.reason.startswith("NVIDIA runtime registered (runtimes: nvidia, runc)")
    assert "2 GPU device node(s) (nvidia0..nvidia1)" in d.reason
    assert d.reason.endswith("GPU checks run (DeviceRequest, as `docker run --gpus`)")


def test_nvidia_default_runtime(tmp_path: Path) -> None:
    d = host(tmp_path, NVIDIA_DEFAULT, ["nvidia0"])
    assert d.default_runtime == "nvidia"
    assert d.reason.startswith("NVIDIA runtime registered (the default)")


def test_cdi_spec_in_a_spec_dir(tmp_path: Path) -> None:
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    (cdi / "fpga.yaml").write_text("cdiVersion: 0.5.0\nkind: vendor.com/fpga\n")
    assert not host(tmp_path, RUNC_ONLY).cdi_gpu
    (cdi / "nvidia.yaml").write_text(CDI_SPEC_YAML)
    d = detect(RUNC_ONLY, dev_dir=tmp_path / "dev", cdi_dirs=(cdi, tmp_path / "missing"), nvidia_smi=None)
    assert (d.cdi_gpu, d.toolkit, d.nvidia_runtime) == (True, True, False)
    assert "a CDI spec for nvidia.com/gpu" in d.reason


@pytest.mark.parametrize(
    ("text", "declares"),
    [
        (CDI_SPEC_YAML, True),
        ('{"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu", "devices": []}', True),
        ("kind: 'nvidia.com/gpu'", True),
        ("kind: nvidia.com/gpus", False),
        ("# kind: nvidia.com/gpu-ish\nkind: nvidia.com/gpu-ish", False),
    ],
)
def test_cdi_text_match(text: str, declares: bool) -> None:
    assert spec_declares_gpu(text) is declares


def test_devices_without_toolkit_points_to_devices_mode(tmp_path: Path) -> None:
    driver = tmp_path / "nvidia"
    (driver / "bin").mkdir(parents=True)
    (driver / "bin" / "nvidia-smi").touch()
    d = host(tmp_path, RUNC_ONLY, ["nvidia0", "nvidiactl"])
    assert d.driver_dir == str(driver)
    assert "1 GPU device node(s) (nvidia0), driver at " in d.reason
    assert d.reason.endswith("pass --sm-gpus devices to pass the device nodes through")


def test_driver_dir_from_libcuda_and_never_a_system_dir(tmp_path: Path) -> None:
    lib = tmp_path / "drv" / "lib64"
    lib.mkdir(parents=True)
    (lib / "libcuda.so.1").touch()
    assert host(tmp_path, RUNC_ONLY, driver_dirs=(str(tmp_path / "none"), str(tmp_path / "drv"))).driver_dir == str(
        tmp_path / "drv"
    )
    # nvidia-smi in /usr/bin would make /usr the driver dir: mounting that hides the image's own /usr.
    (tmp_path / "x").mkdir()
    smi = tmp_path / "x" / "smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    d = host(tmp_path / "x", RUNC_ONLY, nvidia_smi=str(smi))
    assert d.smi_gpus == ("GPU 0: Fake (UUID: GPU-0)",)
    assert d.driver_dir is None  # its parent is not named bin/


def test_listing_and_smi_parsers() -> None:
    names = ["nvidia10", "nvidia2", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia0"]
    assert gpu_device_names(names) == ["nvidia0", "nvidia2", "nvidia10"]
    out = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-b)\n  MIG 1g.10gb\n"
    assert len(parse_smi_list(out)) == 2


# -- instance types and plans ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "gpus"),
    [
        ("ml.p3.2xlarge", 1),
        ("ml.p3.8xlarge", 4),
        ("ml.p3dn.24xlarge", 8),
        ("ml.p4d.24xlarge", 8),
        ("ml.p5.4xlarge", 1),
        ("ml.p5.48xlarge", 8),
        ("ml.g4dn.12xlarge", 4),
        ("ml.g4dn.16xlarge", 1),
        ("ml.g5.xlarge", 1),
        ("ml.g5.24xlarge", 4),
        ("ml.g6.48xlarge", 8),
        ("ml.g6e.12xlarge", 4),
        ("ml.p2.16xlarge", 16),
        ("ml.m5.large", 0),
        ("ml.c5.18xlarge", 0),
        ("ml.trn1.32xlarge", 0),
    ],
)
def test_instance_table(instance_type: str, gpus: int) -> None:
    assert instance_gpus(instance_type) == gpus


def test_table_names_are_training_instance_types() -> None:
    from pytest_sagemaker_contract.spec import _request_shape

    enum = set(_request_shape().members["ResourceConfig"].members["InstanceType"].enum)
    assert sorted(set(GPU_COUNT) - enum) == []


TOOLKIT = GpuDetection(
    runtimes=("nvidia", "runc"), nvidia_runtime=True, devices=("/dev/nvidia0", "/dev/nvidia1"), reason="r"
)
CDI_ONLY = GpuDetection(runtimes=("runc",), cdi_gpu=True, devices=("/dev/nvidia0", "/dev/nvidia1"), reason="r")
NOTHING = GpuDetection(runtimes=("runc",), reason="no NVIDIA runtime registered: GPU checks skipped")


def test_auto_uses_the_nvidia_driver_and_caps_with_a_note() -> None:
    plan = gpu_plan("ml.p3.8xlarge", "auto", TOOLKIT)
    assert (plan.count, plan.given) == (4, 2)
    assert plan.note == "ml.p3.8xlarge has 4 GPUs, this host 2: the container gets 2"
    (request,) = plan.host_config["device_requests"]
    assert (request["driver"], request["count"], request["capabilities"]) == ("nvidia", 2, [["gpu"]])
    assert set(plan.host_config) == {"device_requests"}  # no env, no binds: the toolkit brings the driver


def test_auto_one_gpu_type_is_not_capped() -> None:
    plan = gpu_plan("ml.g5.xlarge", "auto", TOOLKIT)
    assert (plan.count, plan.given, plan.note) == (1, 1, "")


def test_auto_through_cdi_names_devices() -> None:
    (request,) = gpu_plan("ml.g5.12xlarge", "auto", CDI_ONLY).host_config["device_requests"]
    assert (request["driver"], request["device_ids"]) == ("cdi", ["nvidia.com/gpu=0", "nvidia.com/gpu=1"])


def test_auto_without_toolkit_gives_nothing_and_says_why() -> None:
    plan = gpu_plan("ml.p5.48xlarge", "auto", NOTHING)
    assert (plan.count, plan.given, plan.host_config) == (8, 0, {})
    assert plan.note == NOTHING.reason


def test_cpu_type_gets_nothing_except_under_all() -> None:
    assert gpu_plan("ml.m5.large", "auto", TOOLKIT).given == 0
    assert gpu_plan("ml.m5.large", "auto", TOOLKIT).note == "instance type ml.m5.large has no GPUs"
    every = gpu_plan("ml.m5.large", "all", TOOLKIT)
    assert (every.count, every.given) == (2, 2)
    assert gpu_plan("ml.p3.2xlarge", "all", TOOLKIT).given == 1  # still the instance's count


def test_none_gives_nothing() -> None:
    plan = gpu_plan("ml.p3.16xlarge", "none", TOOLKIT)
    assert (plan.count, plan.given, plan.host_config) == (8, 0, {})


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected one of auto, all, none, devices"):
        gpu_plan("ml.g5.xlarge", "gpus", TOOLKIT)


def test_devices_mode_passes_existing_nodes_and_mounts_the_driver(tmp_path: Path) -> None:
    driver = tmp_path / "nvidia"
    (driver / "lib64").mkdir(parents=True)
    (driver / "lib64" / "libcuda.so.580.1").touch()
    d = host(tmp_path, RUNC_ONLY, ["nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm"])
    dev = tmp_path / "dev"
    plan = gpu_plan("ml.g5.12xlarge", "devices", d)
    assert (plan.count, plan.given, plan.driver_dir) == (4, 3, str(driver))
    assert plan.note == "ml.g5.12xlarge has 4 GPUs, this host 3: the container gets 3"
    assert plan.host_config["devices"] == [
        f"{dev}/nvidia0:/dev/nvidia0:rwm",
        f"{dev}/nvidia1:/dev/nvidia1:rwm",
        f"{dev}/nvidia2:/dev/nvidia2:rwm",
        f"{dev}/nvidiactl:/dev/nvidiactl:rwm",
        f"{dev}/nvidia-uvm:/dev/nvidia-uvm:rwm",
    ]
    assert plan.host_config["binds"] == {str(driver): {"bind": str(driver), "mode": "ro"}}
    one = gpu_plan("ml.p5.4xlarge", "devices", d)
    assert [e.split(":")[1] for e in one.host_config["devices"]] == [
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
    ]
    assert "environment" not in plan.host_config


def test_devices_mode_without_nodes_or_driver(tmp_path: Path) -> None:
    assert gpu_plan("ml.g5.xlarge", "devices", NOTHING).given == 0
    assert gpu_plan("ml.g5.xlarge", "devices", NOTHING).note.startswith("--sm-gpus devices: no NVIDIA runtime")
    bare = GpuDetection(devices=("/dev/nvidia0",))
    plan = gpu_plan("ml.g5.xlarge", "devices", bare)
    assert "binds" not in plan.host_config
    assert "no driver directory found to mount" in plan.note


def test_merge_keeps_the_jobs_binds_and_splits_the_rest() -> None:
    plan = gpu_plan("ml.g5.xlarge", "devices", GpuDetection(devices=("/dev/nvidia0",), driver_dir="/usr/local/nvidia"))
    job_binds = {"/tmp/job/input": {"bind": "/opt/ml/input", "mode": "rw"}}
    binds, extra = merge_host_config(job_binds, plan)
    assert binds == {**job_binds, "/usr/local/nvidia": {"bind": "/usr/local/nvidia", "mode": "ro"}}
    assert extra == {"devices": ["/dev/nvidia0:/dev/nvidia0:rwm"]}
    assert merge_host_config(job_binds, gpu_plan("ml.m5.large", "auto", TOOLKIT)) == (job_binds, {})
