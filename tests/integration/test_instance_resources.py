"""Instance-type resources on the real engine: the container's cgroup limits are the type's vCPUs and memory
(capped at the host's), `resource_limits` off sets none, and an out-of-memory kill reads as SageMaker's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.platform.instances import GIB, INSTANCE_RESOURCES, host_capacity
from pytest_sagemaker_contract.platform.result import OOM_REASON
from pytest_sagemaker_contract.spec import TrainingJobSpec, training_instance_types

from .conftest_helpers import IMAGES, job_spec

IMAGE = IMAGES / "memory-hog"
#: The smallest-memory training type (4 GiB), so the out-of-memory test holds as little as it can.
SMALL = "ml.t3.medium"

pytestmark = [pytest.mark.usefixtures("no_leftovers"), pytest.mark.local_platform(grace_s=10)]


@pytest.fixture(scope="module")
def hog(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGE)


def spec(image: str, prefix: str, **overrides: Any) -> TrainingJobSpec:
    return job_spec(image, prefix, instance_type=SMALL, **overrides)


def seen(result: TrainingJobResult, tag: str) -> str:
    return next(line[len(tag) + 1 :] for line in result.logs.splitlines() if line.startswith(f"{tag} "))


def test_smallest_memory_type_is_the_one_used() -> None:
    assert min(INSTANCE_RESOURCES[t][1] for t in training_instance_types()) == INSTANCE_RESOURCES[SMALL][1] == 4


def test_container_gets_the_instance_types_cpus_and_memory(platform: TrainingPlatform, hog: str) -> None:
    result = platform.run(spec(hog, "limits"), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    host_cpus, host_memory = host_capacity(platform.engine.client.info())
    vcpus, gib = INSTANCE_RESOURCES[SMALL]
    assert int(seen(result, "MEMORY")) == min(int(gib * GIB), host_memory or int(gib * GIB))
    quota, period = (int(x) for x in seen(result, "CPU").split())
    assert quota / period == min(vcpus, host_cpus or vcpus)


def test_resource_limits_off_sets_no_limit(
    platform: TrainingPlatform, hog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform, "resource_limits", False, raising=False)
    result = platform.run(spec(hog, "nolimits"), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    memory = seen(result, "MEMORY")
    assert memory == "max" or int(memory) > 1 << 50
    assert seen(result, "CPU").split()[0] in ("max", "-1")


def test_out_of_memory_fails_with_sagemakers_reason(platform: TrainingPlatform, hog: str) -> None:
    """5 GiB held on a 4 GiB type: the OOM killer ends it, the job fails as SageMaker reports it."""
    result = platform.run(spec(hog, "oom", environment={"HOG_BYTES": str(5 * GIB)}), timeout=180)
    assert (result.TrainingJobStatus, result.exit_code) == ("Failed", 137), result.log_tail()
    assert result.FailureReason == OOM_REASON
    assert result.hosts[0].oom_killed
    assert not result.engine_faults
    assert "model.txt" in result.model_files  # artifacts are still exported


def test_the_header_says_when_the_instance_type_is_capped_at_this_host(pytester: pytest.Pytester, hog: str) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--sm-image={hog}", "--sm-instance-type=ml.p4d.24xlarge", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["sagemaker-contract: resources: ml.p4d.24xlarge capped at this host's capacity: * CPUs instead of 96*"]
    )
