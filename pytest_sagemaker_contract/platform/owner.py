"""Who owns a container, network, volume or job directory, and removing what dead sessions left behind.

Every resource the platform creates carries its owner: this machine's name, the test process's pid, that
process's start time and PID namespace, and a random id for the process. Liveness is asked of the engine,
not of /proc: each process that creates resources first starts a *keeper* on the engine, a container of
the platform's helper image running `cat` with its stdin attached to this process (StdinOnce). When the
process ends in any way, SIGKILL included, the kernel closes that connection, `cat` reads EOF, and the
keeper exits and is removed (AutoRemove). An owner is alive while its keeper runs, whichever machine or
PID namespace it runs in, so sessions sharing an engine (a CI container with the host's socket, another
machine on a remote engine) judge each other alike.

Where no keeper could start (no static busybox to build the helper image from), liveness falls back to
the owner's pid, and only where that answer is certain: same host name, same PID namespace as ours, and
ours the initial one. A pid that cannot be seen from here is never taken for a dead one.

Reaping never fails a session: whatever cannot be listed or removed becomes a one-line warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .engine import LABEL, Engine
from .helper import helper_image

__all__ = [
    "INITIAL_PID_NAMESPACE",
    "LABEL_KEEPER",
    "OWNER_FILE",
    "Owner",
    "Reaped",
    "claim",
    "current_owner",
    "keeper_unavailable",
    "reap_dead_sessions",
    "release",
    "write_owner_file",
]

LABEL_HOST = "sm-contract.owner.host"
LABEL_PID = "sm-contract.owner.pid"
LABEL_START = "sm-contract.owner.start"
LABEL_PIDNS = "sm-contract.owner.pidns"
LABEL_ID = "sm-contract.owner.id"
#: "1" when a keeper on the engine vouches for the owner, "0" when only its pid can.
LABEL_HAS_KEEPER = "sm-contract.owner.keeper"
#: On the keeper container itself: the owner id it keeps alive.
LABEL_KEEPER = "sm-contract.keeper"
#: Written into each session's work directory, so a directory can be reaped like a container.
OWNER_FILE = ".sm-contract-owner.json"
#: Work directories are created as `<tempdir>/sm-contract-<run id>-<random>`.
WORKDIR_GLOB = "sm-contract-*"
#: The initial PID namespace's inode (PROC_PID_INIT_INO, fixed since Linux 3.8).
INITIAL_PID_NAMESPACE = "4026531836"
#: A keeper created but not yet started is a session starting up, for this long.
KEEPER_START_GRACE_S = 60.0


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _pid_namespace(pid: int | str = "self") -> str:
    """The inode of the process's PID namespace ("pid:[4026531836]" -> "4026531836"); "" where unreadable."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""
    return link.partition("[")[2].rstrip("]")


_IDS: dict[int, str] = {}


def _owner_id() -> str:
    """A random id per process (a forked child gets its own), the key its keeper is found by."""
    pid = os.getpid()
    if pid not in _IDS:
        _IDS[pid] = uuid.uuid4().hex[:16]
    return _IDS[pid]


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str
    #: PID namespace inode; "" on labels written before it was recorded.
    pidns: str = ""
    #: The process's random id ("" on older labels).
    id: str = ""
    #: Whether a keeper on the engine vouches for this owner.
    keeper: bool = False

    def labels(self) -> dict[str, str]:
        return {
            LABEL_HOST: self.host,
            LABEL_PID: str(self.pid),
            LABEL_START: self.start,
            LABEL_PIDNS: self.pidns,
            LABEL_ID: self.id,
            LABEL_HAS_KEEPER: "1" if self.keeper else "0",
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> Owner | None:
        try:
            owner_id = str(data.get(LABEL_ID) or "")
            return cls(
                data[LABEL_HOST],
                int(data[LABEL_PID]),
                data[LABEL_START],
                str(data.get(LABEL_PIDNS) or ""),
                owner_id,
                data.get(LABEL_HAS_KEEPER) == "1" and bool(owner_id),
            )
        except (KeyError, ValueError, TypeError):
            return None

    def is_dead(self) -> bool:
        """By pid, and True only when certain: the owner shares our host name and PID namespace, ours is the
        initial one, and its process is gone (or the pid was reused). A pid that may live in another
        namespace (another container, `unshare --pid`) or on another machine is never judged dead."""
        if self.host != socket.gethostname():
            return False
        ours = _pid_namespace()
        if ours != INITIAL_PID_NAMESPACE or self.pidns != ours:
            return False
        return _start_time(self.pid) != self.start


def current_owner(keeper: bool = False) -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, _start_time(pid) or "unknown", _pid_namespace(), _owner_id(), keeper)


# -- the keeper -------------------------------------------------------------------------------


@dataclass
class _Keeper:
    pid: int
    container_id: str
    #: The attach connection; the keeper lives exactly as long as it stays open.
    connection: Any


_KEEPERS: dict[str, _Keeper] = {}
_NO_KEEPER: dict[str, str] = {}
_KEEPER_LOCK = threading.Lock()


_ENGINE_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _engine_key(engine: Engine) -> str:
    """The engine's own id (`docker info` ID; two local sockets share a base URL), else its URL."""
    key = _ENGINE_KEYS.get(engine)
    if key is None:
        try:
            key = str(engine.info().get("ID") or "")
        except Exception:
            key = ""
        key = _ENGINE_KEYS[engine] = key or engine.base_url or str(id(engine))
    return key


def _start_keeper(engine: Engine, owner_id: str) -> _Keeper:
    image, why = helper_image(engine)
    if image is None:
        raise RuntimeError(why)
    container_id = engine.create_utility(
        image,
        entrypoint=["/bin/busybox", "cat"],
        name=f"sm-keeper-{owner_id}-{uuid.uuid4().hex[:4]}",
        stdin_open=True,  # with attach (not detach) docker-py also sets StdinOnce: EOF when we go
        labels={LABEL: "keeper", **current_owner(keeper=True).labels(), LABEL_KEEPER: owner_id},
        network_mode="none",
        auto_remove=True,
        complete_labels=True,
    )
    try:
        connection = engine.attach_stdin(container_id)
        engine.start_or_raise(container_id)
    except Exception:
        with contextlib.suppress(Exception):
            engine.remove(container_id)
        raise
    return _Keeper(os.getpid(), container_id, connection)


def _keeper_running(engine: Engine, keeper: _Keeper) -> bool:
    return engine.is_running(keeper.container_id)


def claim(engine: Engine) -> Owner:
    """Make this process the owner of everything `engine` creates from now on, with a keeper on the engine
    vouching for it (started once per process and engine, restarted if it went). Without a keeper the owner
    labels say so, and only the pid fallback can judge it."""
    key = _engine_key(engine)
    with _KEEPER_LOCK:
        keeper = _KEEPERS.get(key)
        if keeper is not None and (keeper.pid != os.getpid() or not _keeper_running(engine, keeper)):
            keeper = None
        if keeper is None and key not in _NO_KEEPER:
            try:
                keeper = _KEEPERS[key] = _start_keeper(engine, _owner_id())
            except Exception as exc:
                _NO_KEEPER[key] = _one_line(exc)
    owner = current_owner(keeper=keeper is not None)
    engine.default_labels.update(owner.labels())
    return owner


def keeper_unavailable(engine: Engine) -> str | None:
    """Why this process has no keeper on `engine` (its leftovers then only reaped by pid), or None."""
    return _NO_KEEPER.get(_engine_key(engine))


def release(engine: Engine) -> None:
    """End this process's keeper on `engine` now (it also ends by itself when the process does)."""
    with _KEEPER_LOCK:
        keeper = _KEEPERS.pop(_engine_key(engine), None)
    if keeper is not None:
        raw = getattr(keeper.connection, "_sock", keeper.connection)
        with contextlib.suppress(Exception):
            raw.close()


def _keeper_vouches(container: Mapping[str, Any], now: float) -> bool:
    """A keeper vouches while it runs, or when it was created moments ago (its session is starting)."""
    state = str(container.get("State") or "")
    starting = state == "created" and now - float(container.get("Created") or 0) < KEEPER_START_GRACE_S
    return state in ("running", "paused", "restarting") or starting


def _live_keepers(engine: Engine) -> Callable[[Owner], bool]:
    """Which owners a keeper on `engine` vouches for now."""
    now = time.time()
    alive = {
        (container.get("Labels") or {}).get(LABEL_KEEPER, "")
        for container in engine.containers(LABEL_KEEPER)
        if _keeper_vouches(container, now)
    }
    return lambda owner: owner.id in alive


# -- reaping ----------------------------------------------------------------------------------


@dataclass
class Reaped:
    """What one reaping removed and what it could not (one line each)."""

    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def attempt(self, what: str, remove: Callable[[], None], fix: str) -> None:
        try:
            remove()
        except Exception as exc:
            self.warnings.append(f"could not remove {what} left by a dead session ({_one_line(exc)}); {fix}")
        else:
            self.removed.append(what)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def write_owner_file(workdir: Path, engine: Engine | None = None) -> None:
    """Record the owner (the engine's labels when claimed, else this process by pid) and which engine its
    keeper is on, so the directory can be judged like the engine's resources."""
    labels = dict(engine.default_labels) if engine is not None else {}
    if Owner.from_mapping(labels) is None:
        labels = current_owner().labels()
    record = {"owner": labels, "engine": _engine_key(engine) if engine is not None else ""}
    (workdir / OWNER_FILE).write_text(json.dumps(record))


def reap_dead_sessions(engine: Engine, tempdir: Path | None = None) -> Reaped:
    """Remove the containers, networks, volumes and work directories of dead owners.

    Never raises. The resources are listed before the keepers: a resource in that list was created after
    its owner's keeper had started, so its owner is alive exactly when the later keeper list shows it.
    """
    reaped = Reaped()
    # Work directories are read before the keepers are listed, like the engine's resources: a directory
    # created after that list (its session's keeper too new to be in it) must not be judged by it.
    workdirs = _workdir_owners(engine, tempdir or Path(tempfile.gettempdir()))
    why = keeper_unavailable(engine)
    if why is not None:
        reaped.warnings.append(
            f"no keeper for this process on the engine ({why}): if it is killed, only a later session on this "
            "host and in this PID namespace can remove its leftovers"
        )
    try:
        containers = engine.containers(LABEL)
        networks = engine.networks(LABEL)
        volumes = engine.volumes(LABEL)
        vouched = _live_keepers(engine)
    except Exception as exc:
        reaped.warnings.append(
            f"could not list the engine's sm-contract resources to remove dead sessions' leftovers "
            f"({_one_line(exc)}); nothing was removed, this session is unaffected"
        )
        return reaped

    def dead(labels: Mapping[str, str] | None) -> bool:
        owner = Owner.from_mapping(labels or {})
        if owner is None:
            return False
        return not vouched(owner) if owner.keeper else owner.is_dead()

    _reap_resources(engine, reaped, dead, containers, networks, volumes)
    for workdir, owner, same_engine in workdirs:
        gone = (not vouched(owner)) if owner.keeper and same_engine else owner.is_dead()
        if gone:
            reaped.attempt(f"directory {workdir}", partial(shutil.rmtree, workdir), f"remove it with: rm -rf {workdir}")
    return reaped


def _reap_resources(
    engine: Engine,
    reaped: Reaped,
    dead: Callable[[Mapping[str, str] | None], bool],
    containers: list[dict[str, Any]],
    networks: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> None:
    now = time.time()
    for container in containers:
        labels = container.get("Labels") or {}
        # A keeper that vouches for no one (its session died between create and start) goes too.
        gone = not _keeper_vouches(container, now) if LABEL_KEEPER in labels else dead(labels)
        if not gone:
            continue
        name = (container.get("Names") or [container["Id"][:12]])[0].lstrip("/")
        reaped.attempt(
            f"container {name}",
            partial(engine.remove, container["Id"]),
            f"remove it with: docker rm -f {name}",
        )
    for network in networks:
        if dead(network.get("Labels")):
            name = str(network.get("Name") or network["Id"][:12])
            reaped.attempt(
                f"network {name}",
                partial(engine.remove_network_forced, network["Id"]),
                f"remove it with: docker network rm {name} (a stale endpoint may need an engine restart)",
            )
    for volume in volumes:
        if dead(volume.get("Labels")):
            reaped.attempt(
                f"volume {volume['Name']}",
                partial(engine.remove_volume, volume["Name"]),
                f"remove it with: docker volume rm {volume['Name']}",
            )


def _workdir_owners(engine: Engine, root: Path) -> list[tuple[Path, Owner, bool]]:
    """Each work directory with a complete owner record: the directory, its owner, and whether that owner's
    keeper is on this engine (else only its pid can judge it)."""
    this_engine = _engine_key(engine)
    found: list[tuple[Path, Owner, bool]] = []
    for workdir in root.glob(WORKDIR_GLOB):
        try:
            record = json.loads((workdir / OWNER_FILE).read_text())
            labels = record.get("owner", record) if isinstance(record, dict) else {}
            owner = Owner.from_mapping(labels)
        except (OSError, ValueError, AttributeError):
            continue
        if owner is not None:
            found.append((workdir, owner, record.get("engine") == this_engine))
    return found
