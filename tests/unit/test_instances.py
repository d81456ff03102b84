"""Instance-type resources: every training type has figures, and they become capped container limits."""

from __future__ import annotations

import pytest

from pytest_sagemaker_contract.platform.instances import GIB, INSTANCE_RESOURCES, host_capacity, resource_plan
from pytest_sagemaker_contract.spec import training_instance_types


def test_every_training_instance_type_has_vcpus_and_memory() -> None:
    missing = [t for t in training_instance_types() if t not in INSTANCE_RESOURCES]
    assert missing == []


@pytest.mark.parametrize(
    ("instance_type", "figures"),
    [
        ("ml.m5.large", (2, 8)),
        ("ml.g5.xlarge", (4, 16)),
        ("ml.p3.2xlarge", (8, 61)),
        ("ml.c5.9xlarge", (36, 72)),
        ("ml.c4.8xlarge", (36, 60)),
        ("ml.t3.medium", (2, 4)),
        ("ml.r5.24xlarge", (96, 768)),
        ("ml.g6e.48xlarge", (192, 1536)),
        ("ml.p4d.24xlarge", (96, 1152)),
    ],
)
def test_published_figures(instance_type: str, figures: tuple[int, float]) -> None:
    assert INSTANCE_RESOURCES[instance_type] == figures


def test_limits_equal_the_type_when_the_host_is_bigger() -> None:
    plan = resource_plan("ml.m5.large", 16, 64 * GIB)
    assert plan.host_config == {"nano_cpus": 2_000_000_000, "mem_limit": 8 * GIB, "memswap_limit": 8 * GIB}
    assert plan.note == ""


def test_limits_capped_at_the_host_with_a_note() -> None:
    plan = resource_plan("ml.p3.2xlarge", 2, 24 * GIB)
    assert plan.host_config == {"nano_cpus": 2_000_000_000, "mem_limit": 24 * GIB, "memswap_limit": 24 * GIB}
    assert (
        plan.note
        == "ml.p3.2xlarge capped at this host's capacity: 2 CPUs instead of 8, 24.0 GiB of memory instead of 61"
    )


def test_off_or_unknown_sets_nothing() -> None:
    assert resource_plan("ml.m5.large", 2, GIB, enabled=False).host_config == {}
    assert resource_plan("ml.unknown.large", 2, GIB).host_config == {}


def test_host_capacity_from_docker_info() -> None:
    assert host_capacity({"NCPU": 2, "MemTotal": 25276510208}) == (2, 25276510208)
    assert host_capacity({}) == (None, None)
