"""Pipe input mode: one FIFO per epoch, `/opt/ml/input/data/<channel>_<epoch>`, fed from the host (contract.md §3).

SageMaker creates `<channel>_0` before the container starts and `<channel>_<N+1>` only once epoch N has
been delivered, so a reader must wait for the next one to appear. Each FIFO has one reader; closing our
end is its EOF. The writer never blocks for good: it opens and writes non-blocking and polls, so `stop()`
ends it promptly whether the reader never came, stopped reading, or the container is gone.

Per epoch the channel's items (channels.resolve_channel) are shuffled by `ShuffleConfig.Seed + epoch`
(when set) and then dealt round-robin for ShardedByS3Key, so with a seed a host may get different objects
each epoch but the hosts' shares stay disjoint and complete, as SageMaker documents. Objects are read in
1 MiB chunks, gunzipped on the fly with `CompressionType: Gzip`, and never held whole in memory.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import random
import select
import socket
import stat
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from ..spec import ChannelSpec
from .channels import ChannelError, ChannelItem, ChannelPart, resolve_channel, shard_items
from .engine import Engine
from .s3 import S3Object, S3Server

__all__ = [
    "DEFAULT_MAX_EPOCHS",
    "RECORDIO_MAGIC",
    "EngineFifoFeeder",
    "PipeFeeder",
    "PipeOptions",
    "epoch_items",
    "pipe_feeder",
    "recordio_frames",
    "recordio_record",
]

DEFAULT_MAX_EPOCHS = 100
RECORDIO_MAGIC = 0xCED7230A
_MAGIC = struct.pack("<I", RECORDIO_MAGIC)
_MAX_RECORD = 1 << 29
_CHUNK = 1 << 20
Opener = Callable[[], AbstractContextManager[IO[bytes]]]


# -- RecordIO -----------------------------------------------------------------------------------


def _aligned_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """Up to 1 MiB at a time, every chunk but the last a multiple of 4 bytes long (so magic words never straddle)."""
    carry = b""
    while True:
        block = stream.read(_CHUNK)
        if not block:
            break
        data = carry + block
        cut = len(data) - len(data) % 4
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        yield carry


def _scan(stream: IO[bytes]) -> tuple[int, list[int]]:
    """A record's length and the offsets of the magic words that sit 4-aligned inside it."""
    size = 0
    magics: list[int] = []
    for chunk in _aligned_chunks(stream):
        at = chunk.find(_MAGIC)
        while at >= 0:
            if at % 4 == 0:
                magics.append(size + at)
                at = chunk.find(_MAGIC, at + 4)
            else:
                at = chunk.find(_MAGIC, at + 1)
        size += len(chunk)
    return size, magics


def _header(cflag: int, length: int) -> bytes:
    return _MAGIC + struct.pack("<I", (cflag << 29) | length)


def _take(stream: IO[bytes], count: int) -> Iterator[bytes]:
    while count > 0:
        block = stream.read(min(count, _CHUNK))
        if not block:
            raise ChannelError(f"object changed while it was streamed: {count} bytes short")
        count -= len(block)
        yield block


def recordio_frames(opener: Opener) -> Iterator[bytes]:
    """One record, streamed, in MXNet/dmlc-core RecordIO framing: the writer MXNet's `recordio` module uses.

    Each part is `magic (0xced7230a, little-endian u32)`, `lrecord (u32: cflag << 29 | length)` and its
    bytes; the record ends with zero padding to a multiple of 4. A record is one part (cflag 0) unless its
    data holds the magic word at a 4-aligned offset: then, exactly like dmlc's `RecordIOWriter`, it is
    split there, that word dropped, parts flagged 1 (first), 2 (middle), 3 (last), so a reader that
    resynchronises on the magic never lands inside data. Records must be shorter than 2^29 bytes.

    `opener` is called twice (a scan for length and magic words, then the copy), so nothing is held whole.
    """
    with opener() as stream:
        size, magics = _scan(stream)
    if size >= _MAX_RECORD:
        raise ChannelError(f"RecordIO holds records below 2^29 bytes; this one has {size}")
    with opener() as stream:
        start = 0
        for i, at in enumerate(magics):
            yield _header(1 if i == 0 else 2, at - start)
            yield from _take(stream, at - start)
            if b"".join(_take(stream, 4)) != _MAGIC:
                raise ChannelError("object changed while it was streamed: a magic word moved")
            start = at + 4
        yield _header(3 if magics else 0, size - start)
        yield from _take(stream, size - start)
        if stream.read(1):
            raise ChannelError("object changed while it was streamed: longer than scanned")
    if size % 4:
        yield b"\0" * (4 - size % 4)


def recordio_record(data: bytes) -> bytes:
    """`data` as one RecordIO record (see recordio_frames)."""
    return b"".join(recordio_frames(lambda: contextlib.nullcontext(io.BytesIO(data))))


# -- what an epoch delivers ---------------------------------------------------------------------


def epoch_items(
    items: Sequence[ChannelItem], epoch: int, *, seed: int | None, host_index: int = 0, host_count: int = 1
) -> list[ChannelItem]:
    """This host's items for `epoch`: shuffled by `seed + epoch` when a seed is set, then dealt round-robin."""
    ordered = list(items)
    if seed is not None:
        random.Random(seed + epoch).shuffle(ordered)
    return shard_items(ordered, host_index, host_count)


@contextlib.contextmanager
def _opened(part: ChannelPart, s3: S3Server | None, gunzip: bool) -> Iterator[IO[bytes]]:
    if isinstance(part, bytes):
        yield io.BytesIO(part)
        return
    with contextlib.ExitStack() as stack:
        raw: IO[bytes]
        if isinstance(part, S3Object):
            if s3 is None:
                raise ChannelError(f"s3://{part.bucket}/{part.key}: the feeder was given no S3Server")
            raw = stack.enter_context(contextlib.closing(s3.open(part)))
        else:
            raw = stack.enter_context(open(part, "rb"))
        if gunzip:
            raw = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
        yield raw


class _Stopped(Exception):
    pass


# -- the feeder ---------------------------------------------------------------------------------


class PipeFeeder:
    """Feeds one channel's FIFOs on one host, epoch after epoch, from a writer thread.

    `prepare()` (before the container starts) creates `<channel>_0`; `start()` runs the writer; `stop()`
    ends it within about `poll_s` whatever the reader does. After `max_epochs` epochs no further FIFO
    appears, so a reader waiting for one waits like it would for a job that has no more data.
    """

    def __init__(
        self,
        data_dir: Path,
        channel: str,
        items: Sequence[ChannelItem],
        *,
        s3: S3Server | None = None,
        compression: str = "None",
        record_wrapper: str = "None",
        shuffle_seed: int | None = None,
        host_index: int = 0,
        host_count: int = 1,
        max_epochs: int = DEFAULT_MAX_EPOCHS,
        poll_s: float = 0.05,
    ) -> None:
        self.data_dir = data_dir
        self.channel = channel
        self.items = tuple(items)
        self.s3 = s3
        self.gunzip = compression == "Gzip"
        self.recordio = record_wrapper == "RecordIO"
        self.shuffle_seed = shuffle_seed
        self.host_index = host_index
        self.host_count = host_count
        self.max_epochs = max_epochs
        self.poll_s = poll_s
        #: Epochs written in full and closed (the reader saw EOF after the last byte).
        self.epochs_completed = 0
        #: Bytes written into each epoch's FIFO so far.
        self.bytes_per_epoch: list[int] = []
        #: Why feeding ended early (a missing object, bad gzip data, ...); None while all is well.
        self.error: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def fifo(self, epoch: int) -> Path:
        return self.data_dir / f"{self.channel}_{epoch}"

    def _mkfifo(self, epoch: int) -> None:
        path = self.fifo(epoch)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISFIFO(path.lstat().st_mode):
                return
            path.unlink()
        os.mkfifo(path, 0o666)
        os.chmod(path, 0o666)  # past the umask: a non-root USER in the image must be able to open it

    def prepare(self) -> Path:
        """Create `<channel>_0`: it must exist when the container starts."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._mkfifo(0)
        return self.fifo(0)

    def start(self) -> PipeFeeder:
        if self._thread is None:
            self.prepare()
            self._thread = threading.Thread(target=self._run, name=f"sm-pipe-{self.channel}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> bool:
        """End the writer (the container has exited, or the job is over); True once it has ended."""
        self._stopping.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for epoch in range(self.max_epochs):
                sink = self._open_epoch(epoch)
                self.bytes_per_epoch.append(0)
                try:
                    complete = self._feed(sink, epoch)
                finally:
                    self._close_epoch(sink)
                if complete:
                    self.epochs_completed += 1
        except _Stopped:
            pass
        except Exception as exc:
            self.error = f"channel {self.channel!r}: {exc}"

    def _open_epoch(self, epoch: int) -> Any:
        """The writable end of epoch `epoch`'s FIFO (created from epoch 1 on), once a reader has opened it."""
        if epoch:
            self._mkfifo(epoch)
        return self._open_writer(self.fifo(epoch))

    def _close_epoch(self, sink: Any) -> None:
        os.close(sink)

    def _open_writer(self, path: Path) -> int:
        """Open for writing once a reader has opened it (ENXIO until then); never blocks past a stop()."""
        while not self._stopping.is_set():
            try:
                return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            self._stopping.wait(self.poll_s)
        raise _Stopped

    def _feed(self, fd: Any, epoch: int) -> bool:
        """Write one epoch; False when the reader closed its end first (it has read what it wanted)."""
        try:
            for item in epoch_items(
                self.items, epoch, seed=self.shuffle_seed, host_index=self.host_index, host_count=self.host_count
            ):
                for part in item.parts:
                    gunzip = self.gunzip and not isinstance(part, bytes)

                    def opener(part: ChannelPart = part, gunzip: bool = gunzip) -> AbstractContextManager[IO[bytes]]:
                        return _opened(part, self.s3, gunzip)

                    if self.recordio:
                        for frame in recordio_frames(opener):
                            self._write(fd, frame, epoch)
                    else:
                        with opener() as stream:
                            while block := stream.read(_CHUNK):
                                self._write(fd, block, epoch)
        except BrokenPipeError:
            return False
        return True

    def _write(self, fd: Any, data: bytes, epoch: int) -> None:
        view = memoryview(data)
        while view:
            if self._stopping.is_set():
                raise _Stopped
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [], self.poll_s)
                continue
            view = view[written:]
            self.bytes_per_epoch[epoch] += written


class EngineFifoFeeder(PipeFeeder):
    """Pipe mode where the engine shares no filesystem with this process (the engine data path).

    The FIFOs live in the job container's /opt/ml/input volume: `<channel>_0` goes into the input
    archive before the start (data_path.put_input), and per epoch a helper container that shares the
    volume (helper.py) runs `cat > <channel>_<epoch>` (creating the FIFO first from epoch 1 on), its
    stdin fed from here through the exec API. The exec's end is the epoch's EOF, and the next FIFO
    appears only after it, as on SageMaker. A reader that closes early ends the exec (cat gets EPIPE),
    which this side sees as a closed connection: the epoch counts as not completed.
    """

    def __init__(self, *args: Any, engine: Engine, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine = engine
        #: The helper container sharing the job container's volumes; set before `start()`.
        self.helper_id: str | None = None
        self._exec_id = ""

    def fifo(self, epoch: int) -> Path:
        return Path("/opt/ml/input/data") / f"{self.channel}_{epoch}"

    def prepare(self) -> Path:
        """Nothing here: `<channel>_0` is part of the input archive."""
        return self.fifo(0)

    def _open_epoch(self, epoch: int) -> socket.socket:
        if self._stopping.is_set():
            raise _Stopped
        if self.helper_id is None:
            raise RuntimeError("no helper container to feed the FIFO from")
        script = 'p="$1"; [ -p "$p" ] || /bin/busybox mkfifo -m 666 "$p"; exec /bin/busybox cat > "$p"'
        cmd = ["/bin/busybox", "sh", "-c", script, "feed", str(self.fifo(epoch))]
        self._exec_id, sock = self.engine.exec_socket(self.helper_id, cmd, stdout=False)
        sock.settimeout(self.poll_s)
        return sock

    def _write(self, fd: Any, data: bytes, epoch: int) -> None:
        view = memoryview(data)
        while view:
            if self._stopping.is_set():
                raise _Stopped
            try:
                written = fd.send(view[:_CHUNK])
            except TimeoutError:
                continue
            except (ConnectionResetError, OSError) as exc:
                raise BrokenPipeError(str(exc)) from None
            view = view[written:]
            self.bytes_per_epoch[epoch] += written

    def _close_epoch(self, sink: Any) -> None:
        """EOF for the reader: close the exec's stdin and wait until its cat has closed the FIFO."""
        sock = cast(socket.socket, sink)
        try:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            while not self._stopping.is_set():
                try:
                    if not sock.recv(_CHUNK):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            while not self._stopping.is_set():
                try:
                    if not self.engine.exec_running(self._exec_id):
                        break
                except Exception:
                    break
                self._stopping.wait(self.poll_s)
        finally:
            sock.close()


# -- wiring from a job request ------------------------------------------------------------------


@dataclass(frozen=True)
class PipeOptions:
    """What a Pipe channel needs beyond ChannelSpec: S3DataSource.AttributeNames and ShuffleConfig.Seed."""

    attribute_names: tuple[str, ...] = ()
    shuffle_seed: int | None = None
    max_epochs: int = DEFAULT_MAX_EPOCHS

    @classmethod
    def from_request(
        cls, request: Mapping[str, Any], channel: str, *, max_epochs: int = DEFAULT_MAX_EPOCHS
    ) -> PipeOptions:
        """Read them from the raw CreateTrainingJob request (TrainingJobSpec.request)."""
        for raw in request.get("InputDataConfig") or ():
            if raw.get("ChannelName") == channel:
                source = (raw.get("DataSource") or {}).get("S3DataSource") or {}
                seed = (raw.get("ShuffleConfig") or {}).get("Seed")
                return cls(tuple(source.get("AttributeNames") or ()), None if seed is None else int(seed), max_epochs)
        return cls(max_epochs=max_epochs)


def pipe_feeder(
    s3: S3Server,
    channel: ChannelSpec,
    data_dir: Path,
    *,
    host_index: int,
    host_count: int,
    role_arn: str,
    region: str,
    options: PipeOptions = PipeOptions(),
    engine: Engine | None = None,
) -> PipeFeeder:
    """Resolve a Pipe channel (ChannelError before the container starts) and create its `<channel>_0`.

    `data_dir` is the host directory mounted as /opt/ml/input/data; `host_index`/`host_count` are this
    host's place among the channel's receivers. With `engine` (the engine data path) the FIFOs are fed
    inside the engine instead (EngineFifoFeeder). Call `start()` with the container, `stop()` when it exits.
    """
    items = resolve_channel(s3, channel, role_arn=role_arn, region=region, attribute_names=options.attribute_names)
    sharded = channel.distribution == "ShardedByS3Key"
    extra: dict[str, Any] = {} if engine is None else {"engine": engine}
    feeder = (PipeFeeder if engine is None else EngineFifoFeeder)(
        data_dir,
        channel.name,
        items,
        s3=s3,
        compression=channel.compression,
        record_wrapper=channel.record_wrapper,
        shuffle_seed=options.shuffle_seed,
        host_index=host_index if sharded else 0,
        host_count=host_count if sharded else 1,
        max_epochs=options.max_epochs,
        **extra,
    )
    feeder.prepare()
    return feeder
