"""Who owns a container, network or job directory, and removing what dead sessions left behind.

Every resource the platform creates carries its owner: this machine's name, the test process's pid
and that process's start time (so a recycled pid is not mistaken for the owner). A session that
starts removes what belongs to owners on this machine that are gone — a pytest killed with SIGKILL,
a CI job cancelled — and never touches a live session's resources, a concurrent one's included.
Owners on other machines (a shared remote engine) are left alone: their liveness cannot be read here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .engine import LABEL, Engine

__all__ = ["OWNER_FILE", "Owner", "current_owner", "reap_dead_sessions", "write_owner_file"]

LABEL_HOST = "sm-contract.owner.host"
LABEL_PID = "sm-contract.owner.pid"
LABEL_START = "sm-contract.owner.start"
#: Written into each session's work directory, so a directory can be reaped like a container.
OWNER_FILE = ".sm-contract-owner.json"
#: Work directories are created as `<tempdir>/sm-contract-<run id>-<random>`.
WORKDIR_GLOB = "sm-contract-*"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    def labels(self) -> dict[str, str]:
        return {LABEL_HOST: self.host, LABEL_PID: str(self.pid), LABEL_START: self.start}

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> Owner | None:
        try:
            return cls(data[LABEL_HOST], int(data[LABEL_PID]), data[LABEL_START])
        except (KeyError, ValueError, TypeError):
            return None

    def is_dead(self) -> bool:
        """True only when the owner is on this machine and its process is gone (or the pid was reused)."""
        if self.host != socket.gethostname():
            return False
        return _start_time(self.pid) != self.start


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, _start_time(pid) or "unknown")


def write_owner_file(workdir: Path, owner: Owner) -> None:
    (workdir / OWNER_FILE).write_text(json.dumps(owner.labels()))


def reap_dead_sessions(engine: Engine, tempdir: Path | None = None) -> list[str]:
    """Remove the containers, networks and work directories of dead owners; what was removed, one line each."""
    removed: list[str] = []
    for container in engine.api.containers(all=True, filters={"label": LABEL}):
        owner = Owner.from_mapping(container.get("Labels") or {})
        if owner is not None and owner.is_dead():
            engine.remove(container["Id"])
            removed.append(f"container {(container.get('Names') or [container['Id'][:12]])[0].lstrip('/')}")
    for network in engine.api.networks(filters={"label": LABEL}):
        owner = Owner.from_mapping(network.get("Labels") or {})
        if owner is not None and owner.is_dead():
            engine.remove_network(network["Id"])
            removed.append(f"network {network.get('Name', network['Id'][:12])}")
    for volume in engine.api.volumes(filters={"label": LABEL}).get("Volumes") or []:
        owner = Owner.from_mapping(volume.get("Labels") or {})
        if owner is not None and owner.is_dead():
            with contextlib.suppress(Exception):
                engine.remove_volume(volume["Name"])
                removed.append(f"volume {volume['Name']}")
    root = tempdir or Path(tempfile.gettempdir())
    for workdir in root.glob(WORKDIR_GLOB):
        with contextlib.suppress(OSError, ValueError):
            owner = Owner.from_mapping(json.loads((workdir / OWNER_FILE).read_text()))
            if owner is not None and owner.is_dead():
                shutil.rmtree(workdir, ignore_errors=True)
                removed.append(f"directory {workdir}")
    return removed
