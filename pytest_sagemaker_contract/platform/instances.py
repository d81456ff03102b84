"""The vCPUs and memory of each SageMaker training instance type, and the container limits they become.

`ml.X` is the EC2 instance type X; the figures are AWS's published EC2 specifications (vCPUs, memory in
GiB). Most families keep one memory-per-vCPU ratio across their sizes (m: 4 GiB, c: 2 GiB, r: 8 GiB per
vCPU); the others are listed size by size. `ESTIMATED` names the types whose figures this project
could not check against a published table (newest families): they follow their family's pattern.

A host gets `nano_cpus`/`mem_limit` (swap = memory, so no swap) equal to its type's figures, capped at
what the Docker host has, with a note when capped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ESTIMATED",
    "INSTANCE_RESOURCES",
    "ResourcePlan",
    "engine_capacity",
    "host_capacity",
    "host_limit",
    "instance_resources",
    "local_capacity",
    "resource_plan",
]

GIB = 1 << 30

#: vCPUs of each size name (EC2's naming: xlarge = 4 vCPUs, Nxlarge = 4N).
_SIZE_VCPUS = {
    "medium": 2,
    "large": 2,
    "xlarge": 4,
    **{f"{n}xlarge": 4 * n for n in (2, 4, 8, 9, 10, 12, 16, 18, 24, 32, 36, 48, 96)},
}

_GEN8_SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")

#: Families whose every size has the same GiB per vCPU, and their sizes in botocore's enum.
_RATIO_FAMILIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "m4": (4, ("xlarge", "2xlarge", "4xlarge", "10xlarge", "16xlarge")),
    "m5": (4, ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")),
    "m6i": (4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")),
    "m7i": (4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")),
    "m8i": (
        4,
        (*_GEN8_SIZES, "48xlarge", "96xlarge"),
    ),
    "m7i-flex": (4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    "m8i-flex": (4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    "c5": (2, ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    "c6i": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")),
    "c7i": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")),
    "c8i": (
        2,
        (*_GEN8_SIZES, "48xlarge", "96xlarge"),
    ),
    "c7i-flex": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    "c8i-flex": (2, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    "r5": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r5d": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    "r6i": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")),
    "r7i": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")),
    "r8i": (
        8,
        (*_GEN8_SIZES, "48xlarge", "96xlarge"),
    ),
    "r8i-flex": (8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    # GPU families with a fixed ratio: g4dn (T4), g5 (A10G), g6 (L4): 4 GiB per vCPU; g6e (L40S): 8.
    "g4dn": (4, ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    "g5": (4, ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")),
    "g6": (4, ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")),
    "g6e": (8, ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")),
    "g7e": (8, ("2xlarge", "4xlarge", "8xlarge")),
    "g7": (4, ("2xlarge", "4xlarge", "8xlarge", "12xlarge", "24xlarge", "48xlarge")),
}

#: Types listed one by one: (vCPUs, memory GiB).
_LISTED: dict[str, tuple[int, float]] = {
    "ml.c4.xlarge": (4, 7.5),
    "ml.c4.2xlarge": (8, 15),
    "ml.c4.4xlarge": (16, 30),
    "ml.c4.8xlarge": (36, 60),
    "ml.c5n.xlarge": (4, 10.5),
    "ml.c5n.2xlarge": (8, 21),
    "ml.c5n.4xlarge": (16, 42),
    "ml.c5n.9xlarge": (36, 96),
    "ml.c5n.18xlarge": (72, 192),
    "ml.t3.medium": (2, 4),
    "ml.t3.large": (2, 8),
    "ml.t3.xlarge": (4, 16),
    "ml.t3.2xlarge": (8, 32),
    "ml.p2.xlarge": (4, 61),
    "ml.p2.8xlarge": (32, 488),
    "ml.p2.16xlarge": (64, 732),
    "ml.p3.2xlarge": (8, 61),
    "ml.p3.8xlarge": (32, 244),
    "ml.p3.16xlarge": (64, 488),
    "ml.p3dn.24xlarge": (96, 768),
    "ml.p4d.24xlarge": (96, 1152),
    "ml.p4de.24xlarge": (96, 1152),
    "ml.p5.4xlarge": (16, 256),
    "ml.p5.48xlarge": (192, 2048),
    "ml.p5e.48xlarge": (192, 2048),
    "ml.p5en.48xlarge": (192, 2048),
    "ml.p6-b200.48xlarge": (192, 2048),
    "ml.p6-b300.48xlarge": (192, 4096),
    "ml.p6e-gb200.36xlarge": (144, 960),
    "ml.trn1.2xlarge": (8, 32),
    "ml.trn1.32xlarge": (128, 512),
    "ml.trn1n.32xlarge": (128, 512),
    "ml.trn2.48xlarge": (192, 2048),
    "ml.g7e.12xlarge": (48, 512),
    "ml.g7e.24xlarge": (96, 1024),
    "ml.g7e.48xlarge": (192, 2048),
}

#: Figures not checked against a published table (they follow the family's pattern).
ESTIMATED = frozenset(
    {f"ml.g7.{s}" for s in _RATIO_FAMILIES["g7"][1]}
    | {f"ml.g7e.{s}" for s in ("2xlarge", "4xlarge", "8xlarge", "12xlarge", "24xlarge", "48xlarge")}
    | {"ml.p6-b300.48xlarge", "ml.p6e-gb200.36xlarge"}
)


def _table() -> dict[str, tuple[int, float]]:
    table: dict[str, tuple[int, float]] = {}
    for family, (ratio, sizes) in _RATIO_FAMILIES.items():
        for size in sizes:
            vcpus = _SIZE_VCPUS[size]
            table[f"ml.{family}.{size}"] = (vcpus, vcpus * ratio)
    table.update(_LISTED)
    return table


#: instance type -> (vCPUs, memory in GiB)
INSTANCE_RESOURCES: dict[str, tuple[int, float]] = _table()


def instance_resources(instance_type: str) -> tuple[int, float] | None:
    """(vCPUs, memory GiB) of a training instance type, or None for one this table does not know."""
    return INSTANCE_RESOURCES.get(instance_type)


@dataclass(frozen=True)
class ResourcePlan:
    """The limits one host's container gets."""

    instance_type: str
    cpus: float | None = None
    memory_bytes: int | None = None
    #: Why the limits differ from the type's figures (capped, unknown type, off); empty when they match.
    note: str = ""
    #: Keyword arguments for docker-py's `APIClient.create_host_config`.
    host_config: dict[str, Any] = field(default_factory=dict)


def host_capacity(info: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(CPUs, memory bytes) of the Docker host, from `docker info` (client.info())."""
    cpus = info.get("NCPU")
    memory = info.get("MemTotal")
    return (int(cpus) if cpus else None, int(memory) if memory else None)


_CAPACITY: dict[int, tuple[Any, tuple[int | None, int | None]]] = {}
_CAPACITY_LOCK = threading.Lock()


def engine_capacity(engine: Any) -> tuple[int | None, int | None]:
    """`host_capacity` of an engine (anything with `info()`, as `Engine`), read once per engine."""
    with _CAPACITY_LOCK:
        cached = _CAPACITY.get(id(engine))
        if cached is not None and cached[0] is engine:
            return cached[1]
    try:
        capacity = host_capacity(engine.info())
    except Exception:
        capacity = (None, None)
    with _CAPACITY_LOCK:
        _CAPACITY[id(engine)] = (engine, capacity)
    return capacity


def resource_plan(
    instance_type: str, host_cpus: int | None, host_memory: int | None, enabled: bool = True
) -> ResourcePlan:
    """The instance type's vCPUs and memory as container limits, capped at the host's (with a note)."""
    if not enabled:
        return ResourcePlan(instance_type, note="--sm-resources off: no CPU or memory limit")
    figures = instance_resources(instance_type)
    if figures is None:
        return ResourcePlan(instance_type, note=f"{instance_type}: vCPUs and memory unknown, no limit set")
    vcpus, gib = figures
    cpus: float = vcpus
    memory = int(gib * GIB)
    capped = []
    if host_cpus and cpus > host_cpus:
        cpus = host_cpus
        capped.append(f"{host_cpus} CPUs instead of {vcpus}")
    if host_memory and memory > host_memory:
        memory = host_memory
        capped.append(f"{host_memory / GIB:.1f} GiB of memory instead of {gib:g}")
    note = f"{instance_type} capped at this host's capacity: {', '.join(capped)}" if capped else ""
    return ResourcePlan(
        instance_type,
        cpus=cpus,
        memory_bytes=memory,
        note=note,
        host_config={"nano_cpus": int(cpus * 1e9), "mem_limit": memory, "memswap_limit": memory},
    )


#: Hosts (containers) one job may have per CPU, and the memory each needs at least, on the machine that runs them.
HOSTS_PER_CPU = 2
MIN_HOST_MEMORY = 1 * GIB
#: The bound never goes below this: two hosts are the smallest cluster and every machine can start them.
MIN_HOST_LIMIT = 2


def host_limit(cpus: int | None, memory_bytes: int | None) -> int:
    """How many hosts (containers) one job may have on a machine with `cpus` and `memory_bytes`: two per CPU and
    one per GiB of memory, at least two. More start containers that starve each other until the run's waits
    time out, which proves nothing about the image."""
    bounds = []
    if cpus:
        bounds.append(cpus * HOSTS_PER_CPU)
    if memory_bytes:
        bounds.append(memory_bytes // MIN_HOST_MEMORY)
    return max(MIN_HOST_LIMIT, min(bounds)) if bounds else 8 * MIN_HOST_LIMIT


def local_capacity() -> tuple[int | None, int | None]:
    """(CPUs, memory bytes) of this machine (what `host_limit` is decided from before any engine is reached)."""
    try:
        cpus: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    try:
        memory: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    return cpus, memory
