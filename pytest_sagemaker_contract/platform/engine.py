"""The Docker engine, through docker-py's low-level API: one request per step, nothing re-inspected.

The run itself uses docker-py rather than testcontainers: a training container needs a real
SIGTERM with a grace period, a wait with a timeout, and exact entrypoint/CMD semantics, where
testcontainers' container wrapper stops with a forced remove (SIGKILL) and pulls a reaper image.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import docker
import docker.errors
import docker.types
import requests.exceptions
from docker.utils.socket import next_frame_header, read_exactly

from ..errors import PlatformError
from .signals import ProcessSignals, descendants_of_init, parse_status, parse_status_dump, sigterm_disposition

__all__ = [
    "LABEL",
    "LABEL_RUN",
    "APIError",
    "ContainerStart",
    "Engine",
    "EngineError",
    "ImageNotFound",
    "ImageUnavailable",
    "MountSpec",
    "NotFound",
    "docker_info",
    "read_exec_frame",
    "sigterm_disposition",
]

LABEL = "sm-contract"
LABEL_RUN = "sm-contract.run"
LABEL_JOB = "sm-contract.job"


#: docker-py's errors, named here so the rest of the platform catches them without importing docker:
#: a container, image, network, volume or archive path that does not exist; a request the engine refused.
NotFound = docker.errors.NotFound
ImageNotFound = docker.errors.ImageNotFound
APIError = docker.errors.APIError


class EngineError(PlatformError, RuntimeError):
    """The Docker engine is unreachable or refused a request; the message says what to do."""


class ImageUnavailable(EngineError):
    """The image is not present locally and could not be pulled."""


@dataclass(frozen=True)
class ContainerStart:
    """The result of starting a container: an error text when the runtime could not exec PID 1."""

    container_id: str
    error: str | None = None


@dataclass(frozen=True)
class MountSpec:
    """A mount as the platform describes it; the engine turns it into docker-py's.

    `source` None with type "volume" is an anonymous volume; `driver_options` makes it a volume of the local
    driver with those options (an overlay of a host directory, data_path.overlay_mount).
    """

    target: str
    source: str | None = None
    type: str = "volume"
    read_only: bool = False
    no_copy: bool = False
    driver_options: Mapping[str, str] | None = None

    def to_docker(self) -> docker.types.Mount:
        driver = docker.types.DriverConfig("local", dict(self.driver_options)) if self.driver_options else None
        return docker.types.Mount(
            self.target,
            self.source,
            type=self.type,
            read_only=self.read_only,
            no_copy=self.no_copy,
            driver_config=driver,
        )


def docker_info(timeout: float = 30.0) -> dict[str, Any]:
    """`docker info` of the engine the environment names (DOCKER_HOST), from a client used once."""
    client = docker.from_env(timeout=timeout)
    try:
        info: dict[str, Any] = client.info()
    finally:
        client.close()
    return info


def read_exec_frame(sock: socket.socket) -> bytes:
    """The payload of the next frame of an exec's multiplexed stream (b"" at its end)."""
    _stream, size = next_frame_header(sock)
    return read_exactly(sock, size) if size > 0 else b""


def _docker_mounts(mounts: Sequence[Any]) -> list[Any]:
    return [m.to_docker() if isinstance(m, MountSpec) else m for m in mounts]


class Engine:
    """A docker-py client plus the few operations a training job needs: the platform's one door to Docker.

    No other module of the package imports docker (tests/unit/test_layers.py), and every container,
    network and volume created here carries the owner labels (`default_labels`, platform/owner.py).
    """

    #: Seconds the first requests (API version, ping) may take: an endpoint that accepts and never answers
    #: fails here, in seconds, instead of after the request timeout (twice).
    connect_timeout_s: float = 15.0
    #: Seconds any later request may take; waits and log follows pass their own.
    request_timeout_s: float = 300.0

    def __init__(self, client: Any = None) -> None:
        if client is None:
            try:
                client = docker.from_env(timeout=self.connect_timeout_s)
                client.ping()
            except Exception as exc:
                raise EngineError(_unreachable(exc, self.connect_timeout_s)) from None
            client.api.timeout = self.request_timeout_s
        self.client = client
        self.api = client.api
        #: Put on every container and network this engine creates (the owner's identity, a test's tag).
        self.default_labels: dict[str, str] = {}
        self._images: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        #: Whether a container's Pid names a process in this machine's /proc (False once the session
        #: measured that the engine does not share this filesystem: it may be another machine).
        self.local_proc = True
        #: Every signal this engine sent, per container id, in order: what the platform itself did, against
        #: which the engine's events show what someone else did (interference.py).
        self.signals_sent: dict[str, list[str]] = {}

    # -- images ---------------------------------------------------------------------------

    def image(self, image: str) -> dict[str, Any]:
        """The image's inspect data, pulled first if missing (as `docker run` does); cached per engine."""
        with self._lock:
            cached = self._images.get(image)
        if cached is not None:
            return cached
        try:
            data: dict[str, Any] = self.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            try:
                self.client.images.pull(image)
                data = self.api.inspect_image(image)
            except docker.errors.DockerException as exc:
                reason = str(exc).splitlines()[0][:300]
                raise ImageUnavailable(
                    f"image {image!r} is not present locally and pulling it failed ({reason}); "
                    f"build or load it first (docker build -t {image} .)"
                ) from None
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot inspect image {image!r}: {exc}") from None
        with self._lock:
            self._images[image] = data
        return data

    def has_image(self, image: str) -> bool:
        """Whether the engine has `image` locally (never pulled)."""
        try:
            self.api.inspect_image(image)
        except Exception:
            return False
        return True

    def inspect_image(self, image: str) -> dict[str, Any]:
        """The image's inspect data, uncached and never pulled; raises ImageNotFound."""
        data: dict[str, Any] = self.api.inspect_image(image)
        return data

    def list_images(self) -> list[dict[str, Any]]:
        images: list[dict[str, Any]] = self.api.images()
        return images

    def build_image(self, context: IO[bytes], tag: str) -> Iterator[bytes]:
        """Build `tag` from a tar build context; the engine's raw progress lines."""
        lines: Iterator[bytes] = self.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True)
        return lines

    def export(self, container_id: str) -> Any:
        """The container's filesystem as a tar stream (chunks; close() ends it)."""
        return self.api.export(container_id)

    # -- the engine -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """`docker info`."""
        info: dict[str, Any] = self.client.info()
        return info

    def close(self) -> None:
        """Close the client's connections (the engine object is not used after)."""
        self.client.close()

    @property
    def base_url(self) -> str:
        return str(getattr(self.api, "base_url", "") or "")

    def owned(self, labels: Mapping[str, str]) -> dict[str, str]:
        """`labels` with the platform's label and the owner's (`default_labels`) under them."""
        return {LABEL: "1", **self.default_labels, **labels}

    # -- containers -----------------------------------------------------------------------

    def create_utility(
        self,
        image: str,
        *,
        labels: Mapping[str, str],
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        name: str | None = None,
        mounts: Sequence[MountSpec] = (),
        volumes_from: Sequence[str] = (),
        network_mode: str | None = None,
        network_disabled: bool = False,
        tmpfs: Mapping[str, str] | None = None,
        stdin_open: bool = False,
        auto_remove: bool = False,
        complete_labels: bool = False,
        hostname: str | None = None,
        aliases: Sequence[str] = (),
    ) -> str:
        """A platform container that is not a training host (loader, probe, helper, relay, keeper); its id.

        It carries the owner labels like every container the engine creates (`complete_labels`: `labels`
        already are the owner's, as a keeper's, and go on as they are). `aliases`: its names on `network_mode`
        (a network of the job's: a credentials pod holds a host's name). Raises docker-py's errors."""
        host_config = self.api.create_host_config(
            mounts=_docker_mounts(mounts) or None,
            volumes_from=list(volumes_from) or None,
            network_mode=network_mode,
            tmpfs=dict(tmpfs) if tmpfs else None,
            auto_remove=auto_remove,
        )
        created = self.api.create_container(
            image,
            command=list(command) if command is not None else None,
            entrypoint=list(entrypoint) if entrypoint is not None else None,
            name=name,
            labels=dict(labels) if complete_labels else self.owned(labels),
            host_config=host_config,
            network_disabled=network_disabled,
            stdin_open=stdin_open,
            hostname=hostname,
            networking_config=(
                self.api.create_networking_config(
                    {network_mode: self.api.create_endpoint_config(aliases=list(aliases))}
                )
                if aliases and network_mode
                else None
            ),
        )
        return str(created["Id"])

    def start_or_raise(self, container_id: str) -> None:
        """Start a platform container; docker-py's error when the engine refuses."""
        self.api.start(container_id)

    def attach_stdin(self, container_id: str) -> Any:
        """A socket on the container's stdin (before it starts): the container sees EOF once it closes."""
        return self.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})

    def is_running(self, container_id: str) -> bool:
        """Whether the container exists and runs (False on any error)."""
        try:
            return bool(self.api.inspect_container(container_id)["State"]["Running"])
        except Exception:
            return False

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.api.inspect_container(container_id)
        return data

    def containers(self, label: str, *, all: bool = True) -> list[dict[str, Any]]:
        """Containers carrying `label` (a key, or key=value)."""
        found: list[dict[str, Any]] = self.api.containers(all=all, filters={"label": label})
        return found

    def networks(self, label: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api.networks(filters={"label": label})
        return found

    def volumes(self, label: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api.volumes(filters={"label": label}).get("Volumes") or []
        return found

    def connect(self, container_id: str, network: str) -> None:
        self.api.connect_container_to_network(container_id, network)

    def disconnect(self, container_id: str, network: str) -> None:
        self.api.disconnect_container_from_network(container_id, network, force=True)

    def follow_stderr(self, container_id: str) -> Iterator[bytes]:
        """The container's stderr from its start, followed."""
        stream: Iterator[bytes] = self.api.logs(container_id, stream=True, follow=True, stdout=False, stderr=True)
        return stream

    def exec_detached(self, container_id: str, cmd: Sequence[str]) -> str:
        """Run `cmd` in the container without waiting; the exec id."""
        created = self.api.exec_create(container_id, list(cmd))
        self.api.exec_start(created["Id"], detach=True)
        return str(created["Id"])

    def exec_socket(self, container_id: str, cmd: Sequence[str], *, stdout: bool) -> tuple[str, socket.socket]:
        """Run `cmd` in the container with its stdin (and stdout, if asked) on a socket; the exec id and socket."""
        created = self.api.exec_create(container_id, list(cmd), stdin=True, stdout=stdout)
        hijacked = self.api.exec_start(created["Id"], socket=True)
        sock: socket.socket = getattr(hijacked, "_sock", hijacked)
        return str(created["Id"]), sock

    def exec_running(self, exec_id: str) -> bool:
        return bool(self.api.exec_inspect(exec_id).get("Running"))

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes]:
        """`path` in the container (started or not) as a tar stream; raises NotFound when it is missing."""
        stream, _stat = self.api.get_archive(container_id, path)
        chunks: Iterator[bytes] = stream
        return chunks

    def create(
        self,
        *,
        image: str,
        name: str,
        hostname: str | None,
        entrypoint: Sequence[str] | None,
        command: Sequence[str] | None,
        environment: Mapping[str, str],
        binds: Mapping[str, Mapping[str, str]],
        labels: Mapping[str, str],
        network: str | None,
        aliases: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
        mounts: Sequence[MountSpec] = (),
    ) -> str:
        """Create the container exactly like `docker run [--entrypoint E] IMAGE [ARGS...]`, without `--init`.

        An entrypoint given here makes the daemon drop the image's CMD, as `docker run --entrypoint` does.
        """
        extra_kwargs = dict(extra or {})
        all_binds = {k: dict(v) for k, v in binds.items()}
        all_binds.update({k: dict(v) for k, v in extra_kwargs.pop("binds", {}).items()})
        if mounts:
            extra_kwargs["mounts"] = _docker_mounts(mounts)
        if "device_requests" in extra_kwargs:
            extra_kwargs["device_requests"] = [
                docker.types.DeviceRequest(**r) if isinstance(r, Mapping) else r
                for r in extra_kwargs["device_requests"]
            ]
        host_config = self.api.create_host_config(
            binds=all_binds,
            init=False,
            network_mode=network,
            **extra_kwargs,
        )
        networking = None
        if network not in (None, "none", "host", "bridge") and aliases:
            networking = self.api.create_networking_config(
                {network: self.api.create_endpoint_config(aliases=list(aliases))}
            )
        try:
            created = self.api.create_container(
                image=image,
                name=name,
                hostname=hostname,
                entrypoint=list(entrypoint) if entrypoint is not None else None,
                command=list(command) if command is not None else None,
                environment=dict(environment),
                labels=self.owned(labels),
                host_config=host_config,
                networking_config=networking,
                detach=True,
            )
        except Exception as exc:
            raise EngineError(f"the engine refused to create container {name}: {exc}") from None
        return str(created["Id"])

    def start(self, container_id: str) -> ContainerStart:
        try:
            self.api.start(container_id)
        except docker.errors.APIError as exc:
            return ContainerStart(container_id, _exec_error(str(exc.explanation or exc)))
        return ContainerStart(container_id)

    def wait(self, container_id: str, timeout: float | None) -> int | None:
        """The exit code, or None when `timeout` passed first."""
        try:
            result = self.api.wait(container_id, timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            return None
        return int(result.get("StatusCode", -1))

    def state(self, container_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.api.inspect_container(container_id)["State"]
        return data

    def kill(self, container_id: str, signal: str) -> bool:
        """Send `signal` to PID 1; False when the container was no longer running."""
        self.signals_sent.setdefault(container_id, []).append(signal)  # before the event it causes
        try:
            self.api.kill(container_id, signal=signal)
        except docker.errors.APIError:
            return False
        return True

    def top(self, container_id: str) -> list[dict[str, str]]:
        """The container's processes, or [] where the engine cannot say (Podman runs `ps` inside the
        container and answers an image without `ps` with an empty body)."""
        try:
            top = self.api.top(container_id, ps_args="-o pid,ppid,args")
        except (docker.errors.DockerException, ValueError):
            return []
        if not isinstance(top, dict):
            return []
        titles = [t.upper() for t in top.get("Titles") or []]
        return [dict(zip(titles, row, strict=False)) for row in top.get("Processes") or []]

    def signal_dispositions(self, container_id: str, tree: Sequence[Mapping[str, str]] = ()) -> list[ProcessSignals]:
        """Every process of the container with its SIGTERM disposition, numbered as inside the container
        ([] when it cannot be read). `tree` is `top()`'s rows (host pids) when the caller has them.

        Read from /proc/<pid>/status on the host when the engine is local (no process is started in the
        container), else through `docker exec` of the image's own shell or cat.
        """
        if self.local_proc:
            found = self._host_dispositions(container_id, tree)
            if found:
                return found
        script = (
            "for d in /proc/[0-9]*; do cat $d/status 2>/dev/null && "
            "printf 'Wchan:\\t%s\\nCmdline:\\t%s\\n' \"$(cat $d/wchan 2>/dev/null)\" "
            "\"$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)\"; done"
        )
        for cmd in (["/bin/sh", "-c", script], ["cat", "/proc/1/status"]):
            try:
                code, out = self.exec(container_id, cmd)
            except Exception:
                continue
            if code == 0 and out.strip():
                found = parse_status_dump(out)
                if found:
                    return found
        return []

    def _host_dispositions(self, container_id: str, tree: Sequence[Mapping[str, str]]) -> list[ProcessSignals]:
        rows = list(tree) or self.top(container_id)
        commands: dict[int, str] = {}
        for row in rows:
            with contextlib.suppress(KeyError, ValueError):
                commands[int(row["PID"])] = row.get("COMMAND") or row.get("CMD") or row.get("ARGS") or ""
        try:
            init = int(self.state(container_id).get("Pid") or 0)
        except Exception:
            init = 0
        if init > 0:
            commands.setdefault(init, "")
        statuses: dict[int, str] = {}
        for pid in commands:
            try:
                with open(f"/proc/{pid}/status") as fh:
                    statuses[pid] = fh.read()
                with open(f"/proc/{pid}/wchan") as fh:
                    wchan = fh.read().strip()
            except OSError:
                continue
            if wchan == "0":  # hidden from a user who may not ptrace the process: ask inside the container
                return []
            statuses[pid] += f"\nWchan:\t{wchan}\n"
        to_container: dict[int, int] = {}
        for pid, text in statuses.items():
            parsed = parse_status(text)
            if parsed is not None:
                to_container[pid] = parsed.pid
        found = []
        for pid, text in statuses.items():
            parsed = parse_status(text, commands.get(pid, ""), host_ppids=to_container)
            if parsed is not None:
                found.append(parsed)
        return descendants_of_init(found)

    def added_files(self, container_id: str, limit: int = 20) -> list[str]:
        """Leaf paths the container added to its own filesystem (`docker diff`, mounts excluded); [] when unknown."""
        try:
            changes = self.api.diff(container_id) or []
        except Exception:
            return []
        added = sorted(str(c.get("Path", "")) for c in changes if c.get("Kind") == 1 and c.get("Path"))
        leaves = [p for i, p in enumerate(added) if not (i + 1 < len(added) and added[i + 1].startswith(p + "/"))]
        return leaves[:limit]

    def pid1_sigterm(self, container_id: str) -> str | None:
        """PID 1's SIGTERM disposition (see `signal_dispositions`); None when it cannot be read."""
        pid1 = next((p for p in self.signal_dispositions(container_id) if p.pid == 1), None)
        return pid1.sigterm if pid1 is not None else None

    def logs(self, container_id: str) -> str:
        raw: bytes = self.api.logs(container_id, stdout=True, stderr=True)
        return raw.decode("utf-8", "replace")

    def follow_logs(self, container_id: str) -> Iterator[bytes]:
        stream: Iterator[bytes] = self.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=True)
        return stream

    def container_events(self, container_ids: Sequence[str], since: float | None = None) -> Any:
        """The engine's events for these containers (decoded dicts, in order), live from now or from `since`
        (epoch seconds); an iterator whose close() ends it. Subscribed when this returns."""
        return self.api.events(
            since=since, filters={"type": "container", "container": list(container_ids)}, decode=True
        )

    def remove(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    def exec(self, container_id: str, cmd: Sequence[str]) -> tuple[int, str]:
        exec_id = self.api.exec_create(container_id, list(cmd), stdout=True, stderr=True)
        output: bytes = self.api.exec_start(exec_id)
        code = self.api.exec_inspect(exec_id).get("ExitCode")
        return int(code if code is not None else -1), output.decode("utf-8", "replace")

    def put_archive(self, container_id: str, path: str, data: Any) -> None:
        """Extract a tar stream (bytes or a file object) at `path` in the container (started or not)."""
        try:
            ok = self.api.put_archive(container_id, path, data)
        except Exception as exc:
            raise EngineError(f"the engine refused to copy into {container_id[:12]} at {path}: {exc}") from None
        if not ok:
            raise EngineError(f"the engine refused to copy into container {container_id[:12]} at {path}")

    def create_volume(self, name: str, labels: Mapping[str, str]) -> str:
        try:
            created = self.api.create_volume(name, labels=self.owned(labels))
        except Exception as exc:
            raise EngineError(f"the engine refused to create volume {name}: {exc}") from None
        return str(created["Name"])

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_volume(name, force=True)

    # -- networks -------------------------------------------------------------------------

    def bridge_gateway(self) -> str | None:
        """The host's address on Docker's default bridge, the one way containers reach host services here.

        None when the engine has no bridge (e.g. `dockerd --bridge=none`) or is not on this machine.
        """
        try:
            bridge = self.api.inspect_network("bridge")
            config = bridge["IPAM"]["Config"] or []
            interface = (bridge.get("Options") or {}).get("com.docker.network.bridge.name")
        except (docker.errors.DockerException, KeyError, TypeError, AttributeError):
            return None
        for entry in config:
            gateway = entry.get("Gateway")
            if not gateway and entry.get("Subnet"):
                gateway = str(next(ipaddress.ip_network(entry["Subnet"], strict=False).hosts()))
            if not gateway or not _is_local_address(gateway):
                continue
            # An address that is local only by chance (a local network that got the same subnet as a remote
            # engine's bridge) is not the bridge: the engine's own bridge interface must hold it here.
            if interface and _interface_address(str(interface)) != gateway:
                continue
            return str(gateway)
        return None

    def inspect_network(self, network: str) -> dict[str, Any]:
        data: dict[str, Any] = self.api.inspect_network(network)
        return data

    def create_network(self, name: str, labels: Mapping[str, str], internal: bool) -> str:
        """A bridge network for one job. `internal` (network isolation) also gives the host no address on it,
        so the containers have no route to anything but each other: not the host's services (moto
        included, which an internal network alone would still let them reach), not the outside."""
        options = {"com.docker.network.bridge.inhibit_ipv4": "true"} if internal else None
        created = self.api.create_network(
            name,
            driver="bridge",
            internal=internal,
            options=options,
            labels=self.owned(labels),
            check_duplicate=True,
        )
        return str(created["Id"])

    def remove_network(self, network_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_network(network_id)

    def remove_network_forced(self, network_id: str) -> None:
        """Remove a dead session's network even with endpoints left on it: stale ones (Docker can keep one
        after a job was killed mid-start: "has active endpoints"), exited containers', the platform's own
        are force-disconnected and the removal retried. A running container that is not the platform's is
        never cut off: EngineError names it."""
        try:
            self.remove_network(network_id)
            return
        except docker.errors.APIError as exc:
            first = str(exc.explanation or exc)
        try:
            network = self.api.inspect_network(network_id)
        except docker.errors.NotFound:
            return
        spared: list[str] = []
        for key, endpoint in (network.get("Containers") or {}).items():
            name = str((endpoint or {}).get("Name") or key)
            try:
                state = self.api.inspect_container(key)
            except docker.errors.DockerException:
                state = None  # a stale endpoint ("ep-…") or a container that is gone
            labels = (state or {}).get("Config", {}).get("Labels") or {}
            if state is not None and state["State"].get("Running") and LABEL not in labels:
                spared.append(name)
                continue
            with contextlib.suppress(docker.errors.APIError):
                self.api.disconnect_container_from_network(name, network_id, force=True)
        try:
            self.remove_network(network_id)
        except docker.errors.APIError as exc:
            if spared:
                net = network.get("Name") or network_id[:12]
                raise EngineError(
                    f"running container(s) {', '.join(spared)}, not the platform's, still use it; disconnect them "
                    f"first: docker network disconnect {net} {spared[0]}"
                ) from None
            again = str(exc.explanation or exc).splitlines()[0]
            raise EngineError(f"{first}; after force-disconnecting: {again}") from None

    # -- cleanup --------------------------------------------------------------------------

    def stop_run(self, run_id: str, grace_s: float) -> None:
        """SIGTERM every running container of the run, then wait up to `grace_s` in all for them to exit.

        For an interrupted session: the images get their SIGTERM (and may save), without the full
        grace a StopTrainingJob gives; `sweep` then removes whatever is left.
        """
        running = self.api.containers(filters={"label": f"{LABEL_RUN}={run_id}", "status": "running"})
        for container in running:
            self.kill(container["Id"], "SIGTERM")
        deadline = time.monotonic() + grace_s
        for container in running:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
                self.api.wait(container["Id"], timeout=left)

    def sweep(self, run_id: str) -> int:
        """Remove every container and network this run created that is still there."""
        removed = 0
        flt = {"label": f"{LABEL_RUN}={run_id}"}
        for container in self.api.containers(all=True, filters=flt):
            self.remove(container["Id"])
            removed += 1
        for network in self.api.networks(filters=flt):
            self.remove_network(network["Id"])
            removed += 1
        for volume in self.api.volumes(filters=flt).get("Volumes") or []:
            with contextlib.suppress(docker.errors.APIError):
                self.remove_volume(volume["Name"])
                removed += 1
        return removed

    # -- faults ---------------------------------------------------------------------------

    def wait_or_raise(self, container_id: str, timeout: float | None) -> int | None:
        """Like `wait`, but a container that no longer exists raises docker.errors.NotFound and an engine
        that cannot be reached raises EngineError, where `wait` reads both as "not yet"."""
        try:
            result = self.api.wait(container_id, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            return None
        except requests.exceptions.ConnectionError as exc:
            if "timed out" in str(exc).lower():  # a read timeout on the unix socket surfaces as this
                return None
            raise EngineError(f"the Docker engine stopped answering ({type(exc).__name__}: {exc})") from None
        return int(result.get("StatusCode", -1))


def _is_local_address(address: str) -> bool:
    """True when this process can listen on `address`, i.e. the engine's bridge is on this machine."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


#: ioctl(2) request for an interface's address (linux/sockios.h).
_SIOCGIFADDR = 0x8915


def _interface_address(name: str) -> str | None:
    """The IPv4 address of this machine's network interface `name` (SIOCGIFADDR), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            data = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(data[20:24])


def _exec_error(text: str) -> str:
    """The useful tail of an OCI start failure, e.g. `exec: "train": executable file not found in $PATH`."""
    marker = text.find("exec: ")
    if marker >= 0:
        text = text[marker:]
    for suffix in (": unknown", ": unknown."):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text.strip()


def _unreachable(exc: Exception, timeout_s: float) -> str:
    """One line: the engine could not be reached, where it was looked for (DOCKER_HOST), and the fix."""
    host = os.environ.get("DOCKER_HOST")
    where = f"DOCKER_HOST={host}" if host else "the local socket (DOCKER_HOST is not set)"
    fix = "start dockerd, or point DOCKER_HOST at a running engine, so that `docker info` answers"
    if "timed out" in str(exc).lower() or isinstance(exc, requests.exceptions.Timeout):
        return (
            f"environment fault: the Docker engine at {where} accepted the connection but did not answer "
            f"within {timeout_s:g} s; {fix}"
        )
    reason = (str(exc).splitlines() or [""])[0][:300]
    return f"environment fault: cannot reach the Docker engine at {where} ({type(exc).__name__}: {reason}); {fix}"
