"""SM-GPU-VISIBLE on a host without GPUs, and the `devices` wiring on the real engine with stand-in nodes.

On a host without a GPU or the NVIDIA container toolkit the check must skip and say what it looked for;
those expectations follow what this host really has (`host_gpu_support`), so the file also holds on a GPU
host. The wiring test gives a container character devices with the NVIDIA major number (195) made by
mknod and a fake driver directory: it proves the plan reaches the engine as device passthrough plus a
read-only driver mount that the container sees at the expected paths, not that a GPU works through
it — that is tests/device/gpu_check.sh's job on a lent GPU machine.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.platform import Engine
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.platform.gpu import detect, gpu_plan, merge_host_config

from .conftest_helpers import IMAGES, host_gpu_support, outcomes_by_check


@pytest.fixture(scope="module")
def busybox_image(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "platform-probe")


@pytest.fixture(scope="module")
def gpu_support(docker_client: docker.DockerClient) -> dict[str, list[str]]:
    return host_gpu_support(docker_client)


def run_gpu(pytester: pytest.Pytester, image: str, *args: str) -> tuple[pytest.RunResult, tuple[str, str]]:
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--sm-image={image}", f"--sm-report={report}", "-k", "SM-GPU", "-rs", *args
    )
    return result, outcomes_by_check(json.loads(report.read_text()))["SM-GPU-VISIBLE"]


def test_cpu_instance_type_is_skipped_naming_the_type_and_the_host(
    pytester: pytest.Pytester, busybox_image: str, no_leftovers: str, gpu_support: dict[str, list[str]]
) -> None:
    result, (outcome, message) = run_gpu(pytester, busybox_image)
    result.assert_outcomes(skipped=1)  # a CPU instance type has no GPUs, whatever this host has
    assert outcome == "skipped"
    assert message.startswith("instance type ml.m5.large has no GPUs; pass --sm-instance-type ml.g5.xlarge")
    # The host half of the message says what this host has: each part checked against our own reading.
    if gpu_support["runtime"]:
        assert "no NVIDIA runtime registered" not in message
        assert "NVIDIA runtime registered" in message
    else:
        assert "no NVIDIA runtime registered (runtimes: " in message
    if gpu_support["cdi"]:
        assert "a CDI spec for nvidia.com/gpu" in message
    else:
        assert "no CDI spec for nvidia.com/gpu in /etc/cdi, /var/run/cdi" in message
    if gpu_support["devices"]:
        assert f"{len(gpu_support['devices'])} GPU device node(s)" in message
    else:
        assert "no /dev/nvidia<N> devices" in message
    if not any(gpu_support.values()):
        assert message.endswith("no /dev/nvidia<N> devices: GPU checks skipped")
    result.stdout.fnmatch_lines(["SKIPPED*SM-GPU-VISIBLE: instance type ml.m5.large has no GPUs*"])


def test_gpu_instance_type_without_gpus_here_is_skipped_with_the_host_reason(
    pytester: pytest.Pytester, busybox_image: str, no_leftovers: str, gpu_support: dict[str, list[str]]
) -> None:
    if any(gpu_support.values()):
        pytest.skip(f"this host can give containers GPUs ({gpu_support}): the no-GPU skip cannot happen here")
    result, (outcome, message) = run_gpu(pytester, busybox_image, "--sm-instance-type=ml.g5.12xlarge")
    result.assert_outcomes(skipped=1)
    assert message.startswith("ml.g5.12xlarge has 4 GPU(s), none can be given here: no NVIDIA runtime registered")
    assert message.endswith("GPU checks skipped")
    result, (outcome, message) = run_gpu(
        pytester, busybox_image, "--sm-instance-type=ml.g5.xlarge", "--sm-gpus=devices"
    )
    assert outcome == "skipped"
    assert message.startswith("ml.g5.xlarge has 1 GPU(s), none can be given here: --sm-gpus devices: no NVIDIA")


def _factory_takes_gpus() -> bool:
    from pytest_sagemaker_contract.fixtures import JOB_MARKER_KEYWORDS

    return "gpus" in JOB_MARKER_KEYWORDS


@pytest.mark.skipif(not _factory_takes_gpus(), reason="training_job(gpus=...) is not plumbed into the platform yet")
def test_none_mode_is_a_control_run_where_the_probe_must_fail(
    pytester: pytest.Pytester, busybox_image: str, no_leftovers: str
) -> None:
    """--sm-gpus none on a GPU type runs the container without GPUs: a probe that needs one must fail."""
    args = ("--sm-instance-type=ml.p5.4xlarge", "--sm-gpus=none")
    result, (outcome, message) = run_gpu(pytester, busybox_image, *args, "--sm-gpu-probe=test -e /dev/nvidia0")
    result.assert_outcomes(failed=1)
    assert "--sm-gpu-probe 'test -e /dev/nvidia0' exited 1 in a container that sees 0 GPU node(s) (none)" in message
    result, (outcome, message) = run_gpu(pytester, busybox_image, *args, "--sm-gpu-probe=ls /dev")
    assert outcome == "passed", message
    assert message.startswith("ml.p5.4xlarge: control run without GPUs (--sm-gpus none); no /dev/nvidia<N>")


# -- devices mode on the real engine ------------------------------------------------------------------


@pytest.fixture
def stand_in_host(tmp_path: Path) -> Path:
    """/dev/nvidia0..1 and nvidiactl as real character devices (major 195) plus a fake driver directory."""
    if os.geteuid() != 0:
        pytest.skip("mknod of character devices needs root")
    dev = tmp_path / "dev"
    dev.mkdir()
    for name, minor in (("nvidia0", 0), ("nvidia1", 1), ("nvidiactl", 255)):
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(195, minor))
    smi = tmp_path / "nvidia" / "bin" / "nvidia-smi"
    smi.parent.mkdir(parents=True)
    smi.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    return tmp_path


@pytest.fixture
def engine(docker_client: docker.DockerClient) -> Iterator[tuple[Engine, str]]:
    """The platform's engine and a run id whose containers are swept afterwards."""
    run_id = f"gpu{uuid.uuid4().hex[:8]}"
    engine = Engine(docker_client)
    yield engine, run_id
    assert engine.sweep(run_id) == 0, "the test's container was not removed"


def test_devices_mode_passes_nodes_and_mounts_the_driver_read_only(
    engine: tuple[Engine, str], stand_in_host: Path, busybox_image: str
) -> None:
    engine_, run_id = engine
    detection = detect(
        {"Runtimes": {"runc": {}}, "DefaultRuntime": "runc"},
        dev_dir=stand_in_host / "dev",
        cdi_dirs=(),
        nvidia_smi=None,
        driver_dirs=(stand_in_host / "nvidia",),
    )
    plan = gpu_plan("ml.g5.12xlarge", "devices", detection)
    assert (plan.count, plan.given) == (4, 2)
    driver = str(stand_in_host / "nvidia")
    binds, extra = merge_host_config({}, plan)
    container = engine_.create(
        image=busybox_image,
        name=f"sm-gpu-wiring-{run_id}",
        hostname="algo-1",
        entrypoint=["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"],
        command=None,
        environment={},
        binds=binds,
        labels={LABEL_RUN: run_id},
        network="none",
        extra=extra,
    )
    assert engine_.start(container).error is None
    code, listing = engine_.exec(container, ["sh", "-c", "ls -l /dev/nvidia0 /dev/nvidia1 /dev/nvidiactl"])
    assert code == 0, listing
    for line in listing.splitlines():
        assert line.startswith("c"), line  # character devices, major 195, as on a GPU host
        assert "195," in line
    code, names = engine_.exec(container, ["ls", "/dev"])
    assert sorted(n for n in names.split() if n.startswith("nvidia")) == ["nvidia0", "nvidia1", "nvidiactl"]
    assert engine_.exec(container, [f"{driver}/bin/nvidia-smi", "-L"]) == (0, "GPU 0: Fake (UUID: GPU-0)\n")
    code, output = engine_.exec(container, ["sh", "-c", f"touch {driver}/written"])
    assert code != 0
    assert "Read-only file system" in output
    assert not (stand_in_host / "nvidia" / "written").exists()
    env = engine_.api.inspect_container(container)["Config"]["Env"] or []
    assert not [e for e in env if e.startswith(("PATH=/usr/local/nvidia", "LD_LIBRARY_PATH="))]
    engine_.kill(container, "SIGTERM")
    assert engine_.wait(container, timeout=120) == 0
    engine_.remove(container)
