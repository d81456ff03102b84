"""How bytes reach /opt/ml: the one module that knows (design.md, "data_path").

Two shapes, chosen once per session from measured facts (`detect_topology`, `choose_data_path`):

- `bind`: host directories bind-mounted (the fast path); a local File-mode channel directory is an
  overlay whose lower layer is the user's directory (`overlay_mount`: no copy, and nothing the
  container does reaches the user's files), a local file or an engine without overlay support gets a
  copy. Only where the engine sees this process's filesystem and this process is root (a non-root
  user could neither read nor delete what root containers write into bind-mounted directories).
- `engine`: no host path reaches the engine. Per host, /opt/ml/{input,model,output} and the checkpoint
  path are anonymous volumes (no copy of what the image ships there, so they are mounted over as on
  SageMaker); /opt/ml/input (config files, File-mode channels) and restored checkpoints are put into
  the created container with the archive endpoint before it starts; each FastFile channel is a volume
  filled through a loader container that is never started, then mounted read-only; model, output and
  failure file come back with the archive endpoint after the container exits (root-owned 0600 files
  and setuid bits arrive intact), checkpoints during training too. Pipe mode's FIFOs live in the input
  volume and are fed by a helper container that shares it (pipes.EngineFifoFeeder, helper.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import untrusted
from .engine import LABEL_RUN, APIError, Engine, EngineError, MountSpec, NotFound
from .helper import static_busybox
from .layout import OPT_ML, HostLayout

__all__ = [
    "BIND",
    "DATA_PATHS",
    "ENGINE",
    "ArchiveMeta",
    "Topology",
    "choose_data_path",
    "collect_dir",
    "detect_topology",
    "engine_mounts",
    "fill_volume",
    "overlay_mount",
    "overlay_supported",
    "put_input",
    "remove_tree",
    "replace_dir",
]

BIND = "bind"
ENGINE = "engine"
#: --sm-data-path values; `auto` picks from the measured topology.
DATA_PATHS = ("auto", BIND, ENGINE)
_MARKER_TARGET = "/sm-contract-marker"
_CHUNK = 1 << 20
#: What `collect_dir` read of each file from the container: mode, uid, gid, uname, gname (for packing intact).
ArchiveMeta = dict[str, tuple[int, int, int, str, str]]


@dataclass(frozen=True)
class Topology:
    """What this session measured about its engine."""

    engine_url: str
    #: True: a file this process wrote was read back from a container; False: it was not; None: could not tell.
    shared_fs: bool | None
    fs_reason: str
    #: The engine's bridge gateway when it is an address of this machine (containers reach us there).
    gateway: str | None
    #: Whether the engine has a default bridge at all (`dockerd --bridge=none` has none).
    has_bridge: bool
    root: bool
    #: Without a gateway here: whether S3 can be relayed through the Docker API (a static busybox to build
    #: the helper image from; s3_relay.py).
    relay: bool = False

    def header(self, data_path: str, forced: bool, s3_endpoint: str | None) -> str:
        """One line for the report header: what was measured and which data path and S3 path follow."""
        parts = [f"sagemaker-contract: engine {self.engine_url}"]
        if self.shared_fs:
            fs = "filesystem shared"
            if not self.root:
                fs += " but pytest is not root (root-written files would be unreadable and undeletable here)"
        elif self.shared_fs is False:
            fs = f"filesystem not shared ({self.fs_reason})"
        else:
            fs = f"filesystem sharing unknown ({self.fs_reason})"
        how = "bind mounts" if data_path == BIND else "/opt/ml moves through the Docker API (volumes, archives)"
        parts.append(f"{fs}: {how}{' (forced by --sm-data-path)' if forced else ''}")
        if data_path == BIND and self.shared_fs is not True:
            parts.append("WARNING: bind mounts of paths the engine may not see give empty /opt/ml directories")
        unreachable = self.container_s3_unavailable()
        if unreachable is None and self.gateway:
            parts.append(f"S3 reachable from containers at {s3_endpoint or self.gateway}")
        elif unreachable is None:
            parts.append(
                "S3 reachable from containers through a relay over the Docker API (its bridge has no address on "
                "this machine; a helper container on the job's network)"
            )
        else:
            parts.append(
                f"S3 not reachable from containers ({unreachable}): images that call S3 themselves cannot be "
                "tested here (declare them with --sm-needs-s3 or @pytest.mark.sagemaker_needs_s3 and they skip)"
            )
        return parts[0] + ": " + "; ".join(parts[1:])

    def container_s3_unavailable(self) -> str | None:
        """Why this engine's containers cannot reach this process's S3, or None when they can."""
        if self.gateway or self.relay:
            return None
        why = "the engine's bridge has no address on this machine" if self.has_bridge else "the engine has no bridge"
        return f"{why}, and no static busybox here to build the S3 relay from (install busybox-static)"


def _engine_url(engine: Engine) -> str:
    host = os.environ.get("DOCKER_HOST")
    if host:
        return host
    base = engine.base_url
    return "unix:///var/run/docker.sock" if base.startswith("http+docker://") else base


def _has_bridge(engine: Engine) -> bool:
    try:
        engine.inspect_network("bridge")
    except Exception:
        return False
    return True


def _probe_image(engine: Engine, preferred: Iterable[str]) -> str | None:
    for image in preferred:
        if engine.has_image(image):
            return image
    try:
        images = engine.list_images()
    except Exception:
        return None
    for data in images:
        tags = [t for t in data.get("RepoTags") or [] if t != "<none>:<none>"]
        if tags:
            return str(tags[0])
    return str(images[0]["Id"]) if images else None


def _probe_container(engine: Engine, image: str, mount: MountSpec, run_id: str) -> str:
    """Create (never start) a container of `image` with `mount`, for reading through the archive API; its id.

    Raises APIError when the engine refuses it."""
    return engine.create_utility(
        image, command=["true"], labels={LABEL_RUN: run_id}, mounts=[mount], network_mode="none"
    )


def _read_file(engine: Engine, container_id: str, path: str) -> bytes:
    """One file's bytes, through the archive API (docker cp works on containers that never started)."""
    stream = engine.get_archive(container_id, path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        return handle.read() if handle is not None else b""


def _shared_filesystem(engine: Engine, run_id: str, images: Iterable[str]) -> tuple[bool | None, str]:
    """Create (never start) a container with a bind mount of a marker file written here; read it back."""
    image = _probe_image(engine, images)
    if image is None:
        return None, "the engine has no image to probe with"
    payload = os.urandom(16).hex().encode()
    fd, marker = tempfile.mkstemp(prefix="sm-contract-marker-")
    try:
        os.write(fd, payload)
        os.close(fd)
        os.chmod(marker, 0o644)
        mount = MountSpec(_MARKER_TARGET, marker, type="bind", read_only=True)
        try:
            container = _probe_container(engine, image, mount, run_id)
        except APIError as exc:
            text = str(exc.explanation or exc)
            if "does not exist" in text or "not found" in text.lower():
                return False, "a file written here does not exist for the engine"
            return None, f"the probe container was refused: {text[:200]}"
        try:
            seen = _read_file(engine, container, _MARKER_TARGET)
        except Exception as exc:
            return None, f"the marker could not be read back ({type(exc).__name__})"
        finally:
            with contextlib.suppress(Exception):
                engine.remove(container)
        if seen == payload:
            return True, "a file written here was read back from a container"
        return False, "a file written here reads differently in a container"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(marker)


def detect_topology(engine: Engine, run_id: str, images: Iterable[str] = ()) -> Topology:
    """Measure, once per session: does the engine see this filesystem, can its containers reach this process."""
    shared, reason = _shared_filesystem(engine, run_id, images)
    gateway = engine.bridge_gateway()
    has_bridge = _has_bridge(engine)
    return Topology(
        engine_url=_engine_url(engine),
        shared_fs=shared,
        fs_reason=reason,
        gateway=gateway,
        has_bridge=has_bridge,
        root=os.geteuid() == 0,
        relay=gateway is None and has_bridge and static_busybox() is not None,
    )


def choose_data_path(requested: str, topology: Topology) -> str:
    """`auto`: bind mounts only where they are safe (shared filesystem and root), else the engine path."""
    if requested in (BIND, ENGINE):
        return requested
    return BIND if topology.shared_fs and topology.root else ENGINE


# -- the engine path ------------------------------------------------------------------------------


def engine_mounts(layout: HostLayout, fastfile_volumes: Mapping[str, str]) -> list[MountSpec]:
    """Anonymous volumes over the platform's directories (removed with the container), FastFile volumes read-only."""
    targets = [f"{OPT_ML}/input", f"{OPT_ML}/model", f"{OPT_ML}/output"]
    if layout.checkpoint_local_path:
        targets.append(layout.checkpoint_local_path)
    mounts = [MountSpec(t, None, type="volume", no_copy=True) for t in targets]
    for name, volume in fastfile_volumes.items():
        mounts.append(MountSpec(f"{OPT_ML}/input/data/{name}", volume, type="volume", read_only=True))
    return mounts


def _dir_info(name: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = int(time.time())
    return info


def _add_tree(tar: tarfile.TarFile, source: Path, arcname: str, dir_mode: int | None = None) -> None:
    """`source` (file or directory, recursively) at `arcname`, owned by root, modes kept (directories: `dir_mode`)."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.isdir() and dir_mode is not None:
            info.mode = dir_mode
        return info

    tar.add(source, arcname=arcname, filter=as_root)


def _stream_tar(fill: Callable[[tarfile.TarFile], None]) -> Iterator[bytes]:
    """A tar stream written by `fill` on a thread of its own, read here in 1 MiB chunks: nothing on disk,
    one chunk in memory. Closing the generator early (the engine refused the upload) ends the writer."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=_CHUNK) as out, tarfile.open(fileobj=out, mode="w|") as tar:
                fill(tar)
        except BaseException as exc:  # a broken pipe when the reader stopped early is expected
            failure.append(exc)

    writer = threading.Thread(target=produce, name="sm-tar-stream", daemon=True)
    writer.start()
    with os.fdopen(read_fd, "rb", buffering=0) as source:
        while chunk := source.read(_CHUNK):
            yield chunk
    writer.join()
    if failure:
        raise failure[0]


def put_input(
    engine: Engine,
    container_id: str,
    layout: HostLayout,
    skip_channels: Iterable[str],
    sources: Mapping[str, Path] | None = None,
    fifos: Iterable[str] = (),
) -> None:
    """Before the start: /opt/ml/input (config files, File-mode channels), the empty model/output directories
    (world-writable, for images with a non-root USER) and the restored checkpoints, as one streamed archive.

    `sources` maps File-mode channels to the user's own directories, read straight into the stream (no
    staged copy); the others come from the layout's channel directories. `fifos` are Pipe-mode FIFOs
    (`<channel>_0`) that must exist under input/data when the container starts."""
    skip = {str(layout.channel_dir(n)) for n in skip_channels}
    direct = dict(sources or {})
    root = OPT_ML.lstrip("/")

    def fill(tar: tarfile.TarFile) -> None:
        for name, mode in (("input", 0o777), ("input/config", 0o755), ("input/data", 0o777)):
            tar.addfile(_dir_info(f"{root}/{name}", mode))
        for path in sorted(layout.config.iterdir()):
            if path.is_file():
                _add_tree(tar, path, f"{root}/input/config/{path.name}")
        staged = {p.name: p for p in sorted(layout.data.iterdir())} if layout.data.is_dir() else {}
        for name in sorted({*staged, *direct}):
            channel = direct.get(name, staged.get(name))
            if channel is None or str(layout.channel_dir(name)) in skip:
                continue
            _add_tree(tar, channel, f"{root}/input/data/{name}", 0o777 if channel.is_dir() else None)
        for name in fifos:
            info = tarfile.TarInfo(f"{root}/input/data/{name}")
            info.type, info.mode, info.mtime = tarfile.FIFOTYPE, 0o666, int(time.time())
            tar.addfile(info)
        for name in ("model", "output", "output/data"):
            tar.addfile(_dir_info(f"{root}/{name}", 0o777))
        if layout.checkpoints is not None and layout.checkpoint_local_path is not None:
            _add_tree(tar, layout.checkpoints, layout.checkpoint_local_path.strip("/"), 0o777)

    engine.put_archive(container_id, "/", _stream_tar(fill))


def fill_volume(engine: Engine, image: str, volume: str, source: Path, labels: Mapping[str, str]) -> None:
    """Fill a FastFile channel's volume: a loader container (created, never started) mounts it and takes the
    archive, streamed."""

    def fill(tar: tarfile.TarFile) -> None:
        if source.is_file():
            _add_tree(tar, source, source.name)
        elif source.is_dir():
            for path in sorted(source.iterdir()):
                _add_tree(tar, path, path.name)

    try:
        loader = engine.create_utility(
            image,
            command=["true"],
            labels=labels,
            mounts=[MountSpec("/sm-volume", volume, type="volume")],
            network_disabled=True,
        )
    except Exception as exc:
        raise EngineError(f"the engine refused the loader container of volume {volume}: {exc}") from None
    try:
        engine.put_archive(loader, "/sm-volume", _stream_tar(fill))
    finally:
        engine.remove(loader)


def _strip_top(name: str, top: str) -> str | None:
    """The member's path below the copied directory `top`, or None for the directory itself (or an escape).

    Docker names members `model/x` for a copy of /opt/ml/model; Podman 4.3 names them `/x`."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    if not name.startswith("/") and parts and parts[0] == top:
        parts = parts[1:]
    return "/".join(parts) or None


def collect_dir(
    engine: Engine, container_id: str, container_path: str, dest: Path, missing_ok: bool = True
) -> ArchiveMeta:
    """Copy `container_path` out of the container into `dest` (emptied first); what each entry really was.

    On disk the owner can always read and remove what arrives (non-root: mode | 0600 / 0700); the real
    mode and owner are returned, keyed by the path on disk, so the packed archive keeps them.
    """
    meta: ArchiveMeta = {}
    if dest.exists():
        remove_tree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        stream = engine.get_archive(container_id, container_path)
    except NotFound:
        if missing_ok:
            return meta
        raise
    with tempfile.TemporaryFile() as spool:
        for chunk in stream:
            spool.write(chunk)
        spool.seek(0)
        root = os.geteuid() == 0
        top = container_path.rstrip("/").rsplit("/", 1)[-1]
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            for member in tar:
                rel = _strip_top(member.name, top)
                if rel is None or not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    continue
                target = _landing(dest, rel)
                if target is None:
                    continue
                meta[str(target)] = (member.mode, member.uid, member.gid, member.uname, member.gname)
                target.parent.mkdir(parents=True, exist_ok=True)
                if member.isdir():
                    if not target.is_symlink():
                        target.mkdir(exist_ok=True)
                        os.chmod(target, member.mode if root else member.mode | 0o700)
                    continue
                if os.path.lexists(target):  # a name the archive already gave: the first one stays
                    continue
                if member.issym():
                    os.symlink(member.linkname, target)  # kept as a link: nothing here ever follows it
                    continue
                if member.islnk():
                    link = _strip_top(member.linkname, top)
                    source = _landing(dest, link) if link is not None else None
                    if source is not None and _plain_file(source):
                        os.link(source, target, follow_symlinks=False)
                    continue
                _write_member(tar, member, target, root)
    return meta


def _landing(dest: Path, rel: str) -> Path | None:
    """Where an archive member lands below `dest`, or None when its name is unsafe or a directory on the way
    is a link (the archive is the container's: a link it holds is never written through)."""
    try:
        target = untrusted.safe_join(dest, rel)
    except untrusted.UnsafeName:
        return None
    parent = dest
    for part in rel.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink():
            return None
    return target


def _plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, root: bool) -> None:
    """A regular member's bytes into a new file at `target`, created without following a link."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        handle = tar.extractfile(member)
        if handle is not None:
            shutil.copyfileobj(handle, out)
        if root:
            with contextlib.suppress(OSError):
                os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode if root else member.mode | 0o600)
        out.flush()
        os.utime(fd, (member.mtime, member.mtime))


def remove_tree(path: Path) -> None:
    """rmtree that also removes what arrived read-only (a 0500 directory); never raises."""

    def writable(func: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            os.chmod(name, 0o700)
            func(name)

    with contextlib.suppress(OSError):
        shutil.rmtree(path, onerror=writable)


def replace_dir(engine: Engine, container_id: str, container_path: str, dest: Path) -> None:
    """Mirror `container_path` into `dest` without a moment where `dest` is missing or half-written."""
    fresh = dest.with_name(dest.name + ".pull")
    collect_dir(engine, container_id, container_path, fresh, missing_ok=False)
    old = dest.with_name(dest.name + ".old")
    if old.exists():
        remove_tree(old)
    os.rename(dest, old)
    os.rename(fresh, dest)
    remove_tree(old)


# -- local File channels on the bind path: copy-on-write, never links -------------------------------

#: Characters that would break overlay's mount options (comma-separated, colon-separated lower dirs).
_OVERLAY_UNSAFE = (",", ":", "\n", "=")


def overlay_mount(source: Path, scratch: Path, target: str) -> MountSpec | None:
    """A copy-on-write view of the user's directory `source` at `target`: an overlay whose lower layer is
    `source` (never written) and whose upper layer lives in `scratch` (the job's directory).

    The container reads the user's files without a copy and may change, chmod, chown or delete them as
    on SageMaker, but every change lands in the upper layer: the user's files keep their bytes, mode,
    owner and existence. None where an overlay cannot be described (a file, or a path overlay's
    options cannot carry).
    """
    if not source.is_dir() or any(c in f"{source}{scratch}" for c in _OVERLAY_UNSAFE):
        return None
    upper, work = scratch / "upper", scratch / "work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    options = {"type": "overlay", "device": "overlay", "o": f"lowerdir={source},upperdir={upper},workdir={work}"}
    return MountSpec(target, None, type="volume", driver_options=options)


def overlay_supported(engine: Engine, image: str, scratch: Path, run_id: str) -> tuple[bool, str]:
    """Can this engine mount an overlay of a local directory? Created (never started) and read back."""
    lower = scratch / "lower"
    lower.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(8).hex().encode()
    (lower / "marker").write_bytes(payload)
    mount = overlay_mount(lower, scratch / "layer", "/sm-contract-overlay")
    if mount is None:
        return False, f"the work directory {scratch} cannot be described in overlay options"
    try:
        container = _probe_container(engine, image, mount, run_id)
    except APIError as exc:
        return False, f"the engine refused an overlay volume ({str(exc.explanation or exc)[:160]})"
    try:
        seen = _read_file(engine, container, "/sm-contract-overlay/marker")
    except Exception as exc:
        return False, f"an overlay volume could not be mounted ({type(exc).__name__}: {str(exc)[:160]})"
    finally:
        with contextlib.suppress(Exception):
            engine.remove(container)
    return (seen == payload), "an overlay of a local directory mounts" if seen == payload else "overlay reads wrong"
