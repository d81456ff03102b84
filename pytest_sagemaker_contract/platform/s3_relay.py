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

Any container on those networks can connect, so the relay is bounded: at most `max_connections` at once
(the sidecar closes further connections at once, and this side refuses any it still announces), two
threads each here, and a connection that moves no byte either way for `idle_s` seconds is closed, as S3
closes an idle one.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Mapping

from .engine import Engine, EngineError

__all__ = ["IDLE_S", "MAX_CONNECTIONS", "RELAY_PORT", "S3Relay"]

RELAY_PORT = 9000
#: Connections served at once; more are closed as they come.
MAX_CONNECTIONS = 32
#: A connection that moves no byte for this long is closed (S3 drops an idle connection after about 20 s).
IDLE_S = 60.0
_CHUNK = 1 << 16
_OPEN = "sm-relay-open "
#: One connection, inside the sidecar: request bytes go up a FIFO to the exec, answers come down another.
#: Two FIFOs per open connection in /run: beyond the limit, the connection is closed before any is made.
_CONNECTION = f"""exec 3<&0
[ "$(/bin/busybox ls /run | /bin/busybox wc -l)" -ge {{fifos}} ] && exit 0
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

    def __init__(
        self,
        engine: Engine,
        image: str,
        target: tuple[str, int],
        name: str,
        labels: Mapping[str, str],
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_s: float = IDLE_S,
    ):
        self.engine = engine
        self.image = image
        self.target = target
        self.name = name
        self.labels = dict(labels)
        self.container_id: str | None = None
        self._lock = threading.Lock()
        self._networks: set[str] = set()
        self._closed = threading.Event()
        self.max_connections = max_connections
        self.idle_s = idle_s
        self._slots = threading.BoundedSemaphore(max_connections)
        #: Connections refused here (over the limit when announced) and closed for idling, for the report.
        self._count_lock = threading.Lock()
        self.refused = 0
        self.idle_closed = 0
        #: Connections being served now, and the most at once.
        self.active = 0
        self.peak = 0

    def start(self) -> S3Relay:
        """Create and start the sidecar on the default bridge, follow its connections. Raises EngineError."""
        try:
            self.container_id = self.engine.create_utility(
                self.image,
                command=["/bin/busybox", "nc", "-ll", "-p", str(RELAY_PORT), "-e", "/bin/busybox", "sh", "/relay/conn"],
                name=self.name,
                labels=self.labels,
                tmpfs={"/run": "mode=0700"},
            )
            data = _CONNECTION.replace("{fifos}", str(2 * self.max_connections)).encode()
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w") as tar:
                info = tarfile.TarInfo("relay/conn")
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
            self.engine.put_archive(self.container_id, "/", archive.getvalue())
            self.engine.start_or_raise(self.container_id)
        except Exception as exc:
            self.close()
            raise EngineError(f"the S3 relay could not start on the engine: {exc}") from None
        threading.Thread(target=self._follow, name="sm-s3-relay", daemon=True).start()
        return self

    def endpoint(self, network: str | None) -> str:
        """The URL containers on `network` (None: the default bridge) reach this session's S3 at."""
        assert self.container_id is not None
        name = network or "bridge"
        with self._lock:
            if name not in self._networks and name != "bridge":
                self.engine.connect(self.container_id, name)
                self._networks.add(name)
            networks = self.engine.inspect_container(self.container_id)["NetworkSettings"]["Networks"]
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
                    self.engine.disconnect(self.container_id, network)

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
                stream = self.engine.follow_stderr(self.container_id)
                for chunk in stream:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace").strip()
                        if not text.startswith(_OPEN) or text in seen:
                            continue
                        seen.add(text)
                        ident = text.removeprefix(_OPEN).split()[0]
                        if not self._slots.acquire(blocking=False):
                            self._refuse(ident)
                            continue
                        with self._count_lock:
                            self.active += 1
                            self.peak = max(self.peak, self.active)
                        threading.Thread(
                            target=self._serve, args=(ident,), name="sm-s3-relay-conn", daemon=True
                        ).start()
            except Exception:
                pass
            if not self._alive():
                return
            self._closed.wait(0.2)

    def _alive(self) -> bool:
        return self.container_id is not None and self.engine.is_running(self.container_id)

    def _refuse(self, ident: str) -> None:
        """Close an announced connection over the limit: its answers' FIFO opened and closed empty ends it."""
        self.refused += 1
        with contextlib.suppress(Exception):
            assert self.container_id is not None
            self.engine.exec_detached(
                self.container_id, ["/bin/busybox", "sh", "-c", ': > "/run/c$1.down"', "refuse", ident]
            )

    def _serve(self, ident: str) -> None:
        sock: socket.socket | None = None
        upstream: socket.socket | None = None
        try:
            assert self.container_id is not None
            _exec_id, sock = self.engine.exec_socket(
                self.container_id, ["/bin/busybox", "sh", "-c", _PUMP, "pump", ident], stdout=True
            )
            sock.sendall(b"\n")
            upstream = socket.create_connection(self.target, timeout=self.idle_s)
            link = _Link(sock, upstream, self.idle_s, self._closed)
            answers = threading.Thread(target=link.copy_down, name="sm-s3-relay-down", daemon=True)
            answers.start()
            link.copy_up()
            answers.join()
            if link.idled:
                with self._count_lock:
                    self.idle_closed += 1
        except Exception:
            pass
        finally:
            for end in (upstream, sock):
                if end is not None:
                    with contextlib.suppress(OSError):
                        end.close()
            with self._count_lock:
                self.active -= 1
            self._slots.release()


class _Link:
    """One relayed connection's two directions, sharing when a byte last moved (for the idle limit)."""

    def __init__(self, sock: socket.socket, upstream: socket.socket, idle_s: float, closed: threading.Event) -> None:
        self.sock = sock
        self.upstream = upstream
        self.idle_s = idle_s
        self.closed = closed
        self.last = time.monotonic()
        self.idled = False
        self.poll_s = min(idle_s, 5.0)
        sock.settimeout(self.poll_s)
        upstream.settimeout(self.poll_s)

    def _recv(self, end: socket.socket, size: int) -> bytes:
        """Up to `size` bytes from `end`; b"" at its end, when the connection idled or the relay closed."""
        while not self.closed.is_set():
            try:
                data = end.recv(size)
            except TimeoutError:
                if time.monotonic() - self.last >= self.idle_s:
                    self.idled = True
                    return b""
                continue
            self.last = time.monotonic()
            return data
        return b""

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            part = self._recv(self.sock, size - len(data))
            if not part:
                return None
            data += part
        return data

    def copy_up(self) -> None:
        """The container's request bytes (the exec's multiplexed stdout frames) to moto."""
        with contextlib.suppress(OSError):
            while (header := self._exactly(8)) is not None:
                size = struct.unpack(">BxxxL", header)[1]
                payload = self._exactly(size) if size else b""
                if not payload:
                    break
                self.upstream.sendall(payload)
        if self.idled or self.closed.is_set():
            self._end()
        with contextlib.suppress(OSError):
            self.upstream.shutdown(socket.SHUT_WR)

    def copy_down(self) -> None:
        """moto's answers into the exec's stdin; its end is the connection's end for the container."""
        with contextlib.suppress(OSError):
            while data := self._recv(self.upstream, _CHUNK):
                self.sock.sendall(data)
        if self.idled:
            self._end()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def _end(self) -> None:
        """Idle (or the relay closing): both ends shut, so the other direction's wait ends too."""
        for end in (self.sock, self.upstream):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
