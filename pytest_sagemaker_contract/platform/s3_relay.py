"""S3 from inside containers on an engine whose containers cannot open a connection to this process
(a remote DOCKER_HOST, GitLab's docker:dind, `.ci/remote-engine`): a relay through the Docker API.

A sidecar of the platform's helper image (helper.py) listens on port 9000 of the job's network
(`nc -ll`, one shell per connection). Each connection makes two FIFOs and says so on the sidecar's
stderr; this process follows that log, and per connection runs an exec in the sidecar whose stdin
carries moto's answers in and whose stdout carries the container's request bytes out, and joins it to
a TCP connection to the session's S3 here. The container signs its requests for the sidecar's address
and this relay forwards bytes untouched, so the SigV4 gate in front of moto checks them as it checks
any other. Only the Docker API is used: whatever engine runs the job can run the relay.

Everything that moves bytes in the sidecar is `dd` (read/write): busybox `cat` copies with sendfile,
which, reading from a TCP socket into a FIFO, held a request back until more bytes came.
"""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
import threading
from collections.abc import Mapping
from typing import cast

from docker.utils.socket import next_frame_header, read_exactly

from .engine import LABEL, Engine, EngineError

__all__ = ["RELAY_PORT", "S3Relay"]

RELAY_PORT = 9000
_CHUNK = 1 << 16
_OPEN = "sm-relay-open "
#: One connection, inside the sidecar: request bytes go up a FIFO to the exec, answers come down another.
_CONNECTION = f"""exec 3<&0
d=/run/c$$
/bin/busybox mkfifo "$d.up" "$d.down"
echo "{_OPEN}$$ $(/bin/busybox cat /proc/sys/kernel/random/uuid)" >&2
/bin/busybox dd bs={_CHUNK} if="$d.down" 2>/dev/null &
down=$!
/bin/busybox dd bs={_CHUNK} <&3 of="$d.up" 2>/dev/null &
up=$!
wait $down
/bin/busybox kill $up 2>/dev/null
/bin/busybox rm -f "$d.up" "$d.down"
"""
#: The exec joined to it: waits for this side's go (so no byte can precede the hijacked stream's start).
_PUMP = (
    'read -r go; exec 3<&0; /bin/busybox dd bs=65536 <&3 of="/run/c$1.down" 2>/dev/null & '
    'exec /bin/busybox dd bs=65536 if="/run/c$1.up" 2>/dev/null'
)


class S3Relay:
    """One sidecar per platform, joined to each job network that needs it; `endpoint(network)` for a job."""

    def __init__(self, engine: Engine, image: str, target: tuple[str, int], name: str, labels: Mapping[str, str]):
        self.engine = engine
        self.image = image
        self.target = target
        self.name = name
        self.labels = dict(labels)
        self.container_id: str | None = None
        self._lock = threading.Lock()
        self._networks: set[str] = set()
        self._closed = threading.Event()

    def start(self) -> S3Relay:
        """Create and start the sidecar on the default bridge, follow its connections. Raises EngineError."""
        api = self.engine.api
        try:
            created = api.create_container(
                self.image,
                command=["/bin/busybox", "nc", "-ll", "-p", str(RELAY_PORT), "-e", "/bin/busybox", "sh", "/relay/conn"],
                name=self.name,
                labels={LABEL: "1", **self.engine.default_labels, **self.labels},
                host_config=api.create_host_config(tmpfs={"/run": "mode=0700"}),
            )
            self.container_id = str(created["Id"])
            script = _CONNECTION.encode()
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w") as tar:
                info = tarfile.TarInfo("relay/conn")
                info.size, info.mode = len(script), 0o755
                tar.addfile(info, io.BytesIO(script))
            api.put_archive(self.container_id, "/", archive.getvalue())
            api.start(self.container_id)
        except Exception as exc:
            self.close()
            raise EngineError(f"the S3 relay could not start on the engine: {exc}") from None
        threading.Thread(target=self._follow, name="sm-s3-relay", daemon=True).start()
        return self

    def endpoint(self, network: str | None) -> str:
        """The URL containers on `network` (None: the default bridge) reach this session's S3 at."""
        assert self.container_id is not None
        name = network or "bridge"
        api = self.engine.api
        with self._lock:
            if name not in self._networks and name != "bridge":
                api.connect_container_to_network(self.container_id, name)
                self._networks.add(name)
            networks = api.inspect_container(self.container_id)["NetworkSettings"]["Networks"]
        address = (networks.get(name) or {}).get("IPAddress")
        if not address:
            raise EngineError(f"the S3 relay has no address on network {name}")
        return f"http://{address}:{RELAY_PORT}"

    def leave(self, network: str) -> None:
        """Before a job's network is removed: the sidecar must not hold it."""
        with self._lock:
            if network in self._networks and self.container_id is not None:
                self._networks.discard(network)
                with contextlib.suppress(Exception):
                    self.engine.api.disconnect_container_from_network(self.container_id, network, force=True)

    def close(self) -> None:
        self._closed.set()
        if self.container_id is not None:
            with contextlib.suppress(Exception):
                self.engine.remove(self.container_id)

    # -- this side of each connection ---------------------------------------------------------------

    def _follow(self) -> None:
        """Serve each connection the sidecar announces. The log is read from its start on every (re)attach:
        a follow ends when the client's read timeout passes without a connection (docker-py's 60 s), and
        Podman answers a follow only once there is a line; each announcement carries a uuid, served once."""
        seen: set[str] = set()
        while not self._closed.is_set() and self.container_id is not None:
            pending = b""
            try:
                stream = self.engine.api.logs(self.container_id, stream=True, follow=True, stdout=False, stderr=True)
                for chunk in stream:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace").strip()
                        if not text.startswith(_OPEN) or text in seen:
                            continue
                        seen.add(text)
                        ident = text.removeprefix(_OPEN).split()[0]
                        threading.Thread(
                            target=self._serve, args=(ident,), name="sm-s3-relay-conn", daemon=True
                        ).start()
            except Exception:
                pass
            if not self._alive():
                return
            self._closed.wait(0.2)

    def _alive(self) -> bool:
        try:
            return bool(self.engine.api.inspect_container(self.container_id)["State"]["Running"])
        except Exception:
            return False

    def _serve(self, ident: str) -> None:
        api = self.engine.api
        sock: socket.socket | None = None
        upstream: socket.socket | None = None
        try:
            assert self.container_id is not None
            created = api.exec_create(
                self.container_id, ["/bin/busybox", "sh", "-c", _PUMP, "pump", ident], stdin=True, stdout=True
            )
            hijacked = api.exec_start(created["Id"], socket=True)
            sock = cast(socket.socket, getattr(hijacked, "_sock", hijacked))
            sock.sendall(b"\n")
            upstream = socket.create_connection(self.target)
            answers = threading.Thread(target=_copy_down, args=(upstream, sock), daemon=True)
            answers.start()
            while not self._closed.is_set():
                _stream, size = next_frame_header(sock)
                if size <= 0:
                    break
                upstream.sendall(read_exactly(sock, size))
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)
            answers.join(30)
        except Exception:
            pass
        finally:
            for end in (upstream, sock):
                if end is not None:
                    with contextlib.suppress(OSError):
                        end.close()


def _copy_down(upstream: socket.socket, sock: socket.socket) -> None:
    """moto's answers into the exec's stdin; its end is the connection's end for the container."""
    with contextlib.suppress(OSError):
        while data := upstream.recv(_CHUNK):
            sock.sendall(data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
