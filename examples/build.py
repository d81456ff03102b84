"""Build the example and test training images on a Docker engine that may have no registry.

One builder for the demo and the test suite, so both run exactly the same images. Importable
(``import build`` with ``examples/`` on ``sys.path``) and a CLI: ``python examples/build.py kmeans``
prints the tag it built on stdout (progress goes to stderr).

Two kinds of image need no registry:

* Shell-script algorithms are busybox images, by this convention::

      FROM scratch
      COPY busybox /bin/busybox
      RUN ["/bin/busybox", "--install", "-s", "/bin"]

  ``COPY busybox`` makes the builder put the host's static busybox (Debian ``busybox-static``) into
  the build context. The RUN must be exec form: there is no shell until it has run.
* Python algorithms declare ``ARG BASE_IMAGE=python:3.12-slim`` / ``FROM ${BASE_IMAGE}`` so users
  build them unchanged; here the builder passes :func:`python_base`, which falls back to a Debian
  bookworm root filesystem imported as an image when ``python:3.12-slim`` cannot be had.

Builds are cached by a hash of the context (and the base image id), stored as an image label, so a
test session rebuilds only what changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors

__all__ = [
    "EXAMPLES_DIR",
    "HASH_LABEL",
    "OFFLINE_BASE",
    "UPSTREAM_BASE",
    "build",
    "python_base",
    "static_busybox",
    "tag_for",
]

EXAMPLES_DIR = Path(__file__).resolve().parent
UPSTREAM_BASE = "python:3.12-slim"
OFFLINE_BASE = "sm-contract/python-base:bookworm"
HASH_LABEL = "sm-contract.context-hash"
HOST_BUSYBOX = Path("/bin/busybox")

_BUILDER_VERSION = "1"
_LOG_TAIL_LINES = 40
_BASE_ENV = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
]
_chosen_bases: dict[str, str] = {}


def _say(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise identical builds across pytest-xdist workers, which would otherwise all do the work."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    locks = Path(tempfile.gettempdir()) / "sm-contract-build-locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{safe}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _image_or_none(client: docker.DockerClient, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def python_base(client: docker.DockerClient) -> str:
    """The base image for Python examples: ``python:3.12-slim`` when the engine has it or can pull it,
    else an offline Debian bookworm image with python3, built once and reused by tag."""
    key = str(client.api.base_url)
    if key in _chosen_bases:
        return _chosen_bases[key]
    if _image_or_none(client, UPSTREAM_BASE) is not None:
        choice, why = UPSTREAM_BASE, "present locally"
    else:
        try:
            client.images.pull(UPSTREAM_BASE)
            choice, why = UPSTREAM_BASE, "pulled from the registry"
        except docker.errors.APIError as exc:
            reason = str(exc.explanation or exc).splitlines()[0][:120]
            with _locked(OFFLINE_BASE):
                if _image_or_none(client, OFFLINE_BASE) is not None:
                    why = f"{UPSTREAM_BASE} cannot be pulled ({reason}); reusing the offline base"
                else:
                    seconds = _build_offline_base(client, OFFLINE_BASE)
                    why = f"{UPSTREAM_BASE} cannot be pulled ({reason}); built offline in {seconds:.0f} s"
            choice = OFFLINE_BASE
    _say(f"python base: {choice} ({why})")
    _chosen_bases[key] = choice
    return choice


def _build_offline_base(client: docker.DockerClient, tag: str) -> float:
    """debootstrap a minimal bookworm with python3 and import it; needs root and a Debian mirror."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sm-contract-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        _say(f"building {tag} with debootstrap (about a minute)")
        _run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs)])
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tarball = Path(work) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."])
        repository, _, version = tag.rpartition(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=version, changes=_BASE_ENV)
    if _image_or_none(client, tag) is None:
        raise RuntimeError(f"docker import did not produce {tag}")
    return time.monotonic() - started


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
        raise RuntimeError(f"{argv[0]} failed with exit code {result.returncode}:\n{tail}")


def _resolve(what: str | os.PathLike[str]) -> tuple[Path, str]:
    """The directory to build and its tag: examples get ``sm-contract-example/``, anything else
    ``sm-contract-test/`` so a test's throwaway images never shadow an example."""
    candidate = EXAMPLES_DIR / what if isinstance(what, str) and not os.path.isabs(what) else None
    if candidate is not None and (candidate / "Dockerfile").is_file():
        directory = candidate.resolve()
    else:
        directory = Path(what).resolve()
    if not (directory / "Dockerfile").is_file():
        raise RuntimeError(f"no Dockerfile in {directory} (nor an example of that name in {EXAMPLES_DIR})")
    return directory, tag_for(directory)


def tag_for(directory: Path) -> str:
    """The tag :func:`build` gives ``directory``, for callers that only need the name."""
    directory = directory.resolve()
    if directory.is_relative_to(EXAMPLES_DIR) and directory != EXAMPLES_DIR:
        return f"sm-contract-example/{_repo_name(directory.relative_to(EXAMPLES_DIR).as_posix())}:latest"
    return f"sm-contract-test/{_repo_name(directory.name)}:latest"


def _repo_name(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower().replace("/", "-")).strip("-._")
    return cleaned or "image"


def _hash_tree(root: Path, extra: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for item in (_BUILDER_VERSION, *extra):
        digest.update(item.encode() + b"\0")
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
        digest.update(b"\0" + oct(path.lstat().st_mode & 0o777).encode() + b"\0")
    return digest.hexdigest()[:32]


def _is_static(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP names ld-linux when it has one)."""
    try:
        head = path.read_bytes()[:8192]
    except OSError:
        return False
    return head.startswith(b"\x7fELF") and b"ld-linux" not in head and b"ld-musl" not in head


def static_busybox(client: docker.DockerClient) -> Path:
    """A statically linked busybox for FROM-scratch images: the host's (Debian busybox-static), or, on a
    machine without it, the one inside the official `busybox:musl` image (pulled once, cached)."""
    if _is_static(HOST_BUSYBOX):
        return HOST_BUSYBOX
    cached = Path(tempfile.gettempdir()) / "sm-contract-busybox" / "busybox"
    if _is_static(cached):
        return cached
    image = "busybox:1.36-musl"
    try:
        client.images.pull(image)
        container = client.containers.create(image, command=["true"], labels={"sm-contract": "build"})
        try:
            stream, _stat = container.get_archive("/bin/busybox")
            archive = io.BytesIO(b"".join(stream))
        finally:
            container.remove(force=True)
    except docker.errors.DockerException as exc:
        raise RuntimeError(
            f"no static busybox: {HOST_BUSYBOX} is missing or dynamically linked, and {image} could not be "
            f"pulled ({exc}); install Debian's busybox-static"
        ) from None
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=archive) as tar:
        member = tar.extractfile("busybox")
        assert member is not None
        cached.write_bytes(member.read())
    cached.chmod(0o755)
    return cached


def build(client: docker.DockerClient, what: str | os.PathLike[str]) -> str:
    """Build ``what`` (an example name such as ``"kmeans"`` or ``"broken/shell-form"``, or a directory
    with a Dockerfile) unless an image with the same context hash exists; return its tag."""
    directory, tag = _resolve(what)
    dockerfile = (directory / "Dockerfile").read_text()
    with tempfile.TemporaryDirectory(prefix="sm-contract-context-") as work:
        context = Path(work) / "context"
        shutil.copytree(directory, context, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if re.search(r"^\s*COPY\s+(--\S+\s+)*busybox\s", dockerfile, re.MULTILINE | re.IGNORECASE):
            shutil.copy2(static_busybox(client), context / "busybox")
        buildargs: dict[str, str] = {}
        extra: list[str] = []
        if re.search(r"^\s*ARG\s+BASE_IMAGE\b", dockerfile, re.MULTILINE | re.IGNORECASE):
            base = python_base(client)
            buildargs["BASE_IMAGE"] = base
            extra.append(f"BASE_IMAGE={base}@{client.images.get(base).id}")
        context_hash = _hash_tree(context, extra)
        with _locked(tag):
            existing = _image_or_none(client, tag)
            if existing is not None and existing.labels.get(HASH_LABEL) == context_hash:
                return tag
            started = time.monotonic()
            _docker_build(client, context, tag, {HASH_LABEL: context_hash}, buildargs)
            _say(f"built {tag} in {time.monotonic() - started:.1f} s")
    return tag


def _docker_build(
    client: docker.DockerClient, context: Path, tag: str, labels: dict[str, str], buildargs: dict[str, str]
) -> None:
    try:
        client.images.build(path=str(context), tag=tag, labels=labels, buildargs=buildargs, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        raise RuntimeError(f"building {tag} failed: {exc.msg}\n{_log_tail(exc.build_log)}") from None
    except docker.errors.APIError as exc:
        raise RuntimeError(f"building {tag} failed: {exc.explanation or exc}") from None


def _log_tail(build_log: Iterable[dict[str, Any]]) -> str:
    lines: list[str] = []
    for chunk in build_log:
        text = chunk.get("stream") or chunk.get("error") or ""
        lines.extend(line for line in str(text).splitlines() if line.strip())
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python examples/build.py EXAMPLE|DIRECTORY ...", file=sys.stderr)
        return 2
    client = docker.from_env()
    try:
        for what in argv:
            print(build(client, what), flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
