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
* Python algorithms that install packages (``examples/toolkit-script-mode``: AWS's ``sagemaker-training``)
  also have a ``requirements.txt`` and a ``wheels/`` folder that their Dockerfile installs from
  (``pip install --no-index --find-links``) when it holds anything. A ``docker build`` here cannot reach
  an index, so the builder downloads the requirements on the host, for the base image's Python, into the
  build context's ``wheels/`` (cached per requirements and Python, so only the first build downloads);
  such images get :func:`python_dev_base`, which can compile C extensions. Users who build the Dockerfile
  themselves leave ``wheels/`` empty and pip reaches PyPI as usual.

Builds are cached by a hash of the context (and the base image id), stored as an image label, so a
test session rebuilds only what changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import platform
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

from pytest_sagemaker_contract.platform.helper import is_static

__all__ = [
    "EXAMPLES_DIR",
    "HASH_LABEL",
    "OFFLINE_BASE",
    "OFFLINE_DEV_BASE",
    "UPSTREAM_BASE",
    "build",
    "python_base",
    "python_dev_base",
    "static_busybox",
    "tag_for",
]

EXAMPLES_DIR = Path(__file__).resolve().parent
UPSTREAM_BASE = "python:3.12-slim"
OFFLINE_BASE = "sm-contract/python-base:bookworm"
OFFLINE_DEV_BASE = "sm-contract/python-dev-base:bookworm"
_DEV_PACKAGES = ("python3", "python3-dev", "python3-venv", "gcc", "libc6-dev")
PYTHON_LABEL = "sm-contract.python"
WHEEL_CACHE = Path(tempfile.gettempdir()) / f"sm-contract-wheels-{os.getuid()}"
HASH_LABEL = "sm-contract.context-hash"
HOST_BUSYBOX = Path("/bin/busybox")
#: Debian's `tini` package: the real tini, for test images that run a trainer under an init.
HOST_TINI = Path("/usr/bin/tini-static")

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
    locks = Path(tempfile.gettempdir()) / f"sm-contract-build-locks-{os.getuid()}"  # per user: /tmp is shared
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


def python_dev_base(client: docker.DockerClient) -> str:
    """The base for Python examples that compile C extensions: ``python:3.12-slim`` where it can be had (a
    registry answers, so the Dockerfile can apt-get a compiler), else an offline bookworm with python3,
    python3-dev, python3-venv and gcc, built once and reused by tag."""
    base = python_base(client)
    if base == UPSTREAM_BASE:
        return base
    with _locked(OFFLINE_DEV_BASE):
        if _image_or_none(client, OFFLINE_DEV_BASE) is None:
            seconds = _build_offline_base(client, OFFLINE_DEV_BASE, _DEV_PACKAGES)
            _say(f"python dev base: {OFFLINE_DEV_BASE} built offline in {seconds:.0f} s")
    return OFFLINE_DEV_BASE


def _build_offline_base(client: docker.DockerClient, tag: str, packages: Iterable[str] = ("python3",)) -> float:
    """debootstrap a minimal bookworm with `packages` and import it; needs root and a Debian mirror."""
    missing = _offline_base_missing()
    if missing:
        raise RuntimeError(missing)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sm-contract-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        _say(f"building {tag} with debootstrap (a minute or two)")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", "bookworm", str(rootfs)])
        python = os.readlink(rootfs / "usr/bin/python3") if (rootfs / "usr/bin/python3").is_symlink() else ""
        version = python.removeprefix("python")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tarball = Path(work) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."])
        repository, _, tag_version = tag.rpartition(":")
        changes = [*_BASE_ENV, f"LABEL {PYTHON_LABEL}={version}"] if re.fullmatch(r"3\.\d+", version) else _BASE_ENV
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag_version, changes=changes)
    if _image_or_none(client, tag) is None:
        raise RuntimeError(f"docker import did not produce {tag}")
    return time.monotonic() - started


def _offline_base_missing() -> str:
    """Why no offline base can be built here, as one line naming what to install, or "" when it can."""
    if shutil.which("debootstrap") is None:
        return (
            f"{UPSTREAM_BASE} cannot be pulled and debootstrap is not installed to build an offline Python base: "
            f"install it (as root: apt-get install -y debootstrap) or load {UPSTREAM_BASE} into the engine "
            f"(docker load -i python-3.12-slim.tar on a machine without registry access)"
        )
    if os.geteuid() != 0:
        return (
            f"{UPSTREAM_BASE} cannot be pulled and debootstrap needs root to build an offline Python base: run "
            f"this once as root, or load {UPSTREAM_BASE} into the engine (docker load -i python-3.12-slim.tar)"
        )
    return ""


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


def static_busybox(client: docker.DockerClient) -> Path:
    """A statically linked busybox for FROM-scratch images: the host's (Debian busybox-static), or, on a
    machine without it, the one inside the official `busybox:musl` image (pulled once, cached)."""
    if is_static(HOST_BUSYBOX):
        return HOST_BUSYBOX
    cached = Path(tempfile.gettempdir()) / f"sm-contract-busybox-{os.getuid()}" / "busybox"
    if is_static(cached):
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


def _variant(what: str | os.PathLike[str]) -> tuple[str | os.PathLike[str], str]:
    """``DIR/Dockerfile.NAME`` names a variant of DIR's image, built from that file: (DIR, file name)."""
    path = Path(what)
    if path.name.startswith("Dockerfile.") and ((EXAMPLES_DIR / path).is_file() or path.is_file()):
        return (str(path.parent) if isinstance(what, str) else path.parent), path.name
    return what, "Dockerfile"


def build(client: docker.DockerClient, what: str | os.PathLike[str]) -> str:
    """Build ``what`` (an example name such as ``"kmeans"`` or ``"broken/shell-form"``, or a directory
    with a Dockerfile) unless an image with the same context hash exists; return its tag.

    ``DIR/Dockerfile.NAME`` (e.g. ``"toolkit-script-mode/Dockerfile.forwarding"``) builds DIR with that
    Dockerfile instead, tagged as DIR's image with ``-NAME`` appended to the repository."""
    what, dockerfile_name = _variant(what)
    directory, tag = _resolve(what)
    if dockerfile_name != "Dockerfile":
        repository, _, version = tag.rpartition(":")
        tag = f"{repository}-{_repo_name(dockerfile_name.removeprefix('Dockerfile.'))}:{version}"
    dockerfile = (directory / dockerfile_name).read_text()
    with tempfile.TemporaryDirectory(prefix="sm-contract-context-") as work:
        context = Path(work) / "context"
        shutil.copytree(directory, context, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if re.search(r"^\s*COPY\s+(--\S+\s+)*busybox\s", dockerfile, re.MULTILINE | re.IGNORECASE):
            shutil.copy2(static_busybox(client), context / "busybox")
        if re.search(r"^\s*COPY\s+(--\S+\s+)*tini-static\s", dockerfile, re.MULTILINE | re.IGNORECASE):
            if not HOST_TINI.is_file():
                raise SystemExit(f"{directory}: needs a static tini at {HOST_TINI}; install Debian's tini package")
            shutil.copy2(HOST_TINI, context / "tini-static")
        buildargs: dict[str, str] = {}
        extra: list[str] = [] if dockerfile_name == "Dockerfile" else [dockerfile_name]
        if re.search(r"^\s*ARG\s+BASE_IMAGE\b", dockerfile, re.MULTILINE | re.IGNORECASE):
            installs = (context / "wheels").is_dir() and (context / "requirements.txt").is_file()
            base = python_dev_base(client) if installs else python_base(client)
            buildargs["BASE_IMAGE"] = base
            extra.append(f"BASE_IMAGE={base}@{client.images.get(base).id}")
            if installs:
                house = wheelhouse(context / "requirements.txt", _python_version(client, base))
                for wheel in house.iterdir():
                    if wheel.name != _COMPLETE:
                        _link_or_copy(wheel, context / "wheels" / wheel.name)
        context_hash = _hash_tree(context, extra)
        with _locked(tag):
            existing = _image_or_none(client, tag)
            if existing is not None and existing.labels.get(HASH_LABEL) == context_hash:
                return tag
            started = time.monotonic()
            _docker_build(client, context, tag, {HASH_LABEL: context_hash}, buildargs, dockerfile_name)
            _say(f"built {tag} in {time.monotonic() - started:.1f} s")
    return tag


def _docker_build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    labels: dict[str, str],
    buildargs: dict[str, str],
    dockerfile: str = "Dockerfile",
) -> None:
    try:
        client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            labels=labels,
            buildargs=buildargs,
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        raise RuntimeError(f"building {tag} failed: {exc.msg}\n{_log_tail(exc.build_log)}") from None
    except docker.errors.APIError as exc:
        raise RuntimeError(f"building {tag} failed: {exc.explanation or exc}") from None


_COMPLETE = ".complete"


def _python_version(client: docker.DockerClient, base: str) -> str:
    """``3.11``: the Python of `base`, from the offline base's label, python images' PYTHON_VERSION, or a run."""
    image = client.images.get(base)
    if image.labels.get(PYTHON_LABEL):
        return str(image.labels[PYTHON_LABEL])
    for entry in image.attrs.get("Config", {}).get("Env") or []:
        if entry.startswith("PYTHON_VERSION="):
            return ".".join(entry.partition("=")[2].split(".")[:2])
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    output = client.containers.run(base, ["python3", "-c", probe], entrypoint=[], remove=True)
    return bytes(output).decode().strip()


def _canonical(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def wheelhouse(requirements: Path, python: str) -> Path:
    """Every distribution `requirements` needs, for CPython `python` on this machine's architecture, in a
    folder pip can install from offline (``--no-index --find-links``): wheels where PyPI has them, source
    distributions (plus setuptools and wheel to build them) where it has none. Downloaded once, then
    reused by the hash of the requirements, the Python version and the architecture."""
    machine = platform.machine()
    key = hashlib.sha256(f"{_BUILDER_VERSION}\0{python}\0{machine}\0".encode() + requirements.read_bytes())
    target = WHEEL_CACHE / key.hexdigest()[:24]
    with _locked(f"wheels-{target.name}"):
        if (target / _COMPLETE).is_file():
            return target
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        started = time.monotonic()
        wanted = [
            line.split("#", 1)[0].strip()
            for line in requirements.read_text().splitlines()
            if line.split("#", 1)[0].strip()
        ]
        _download(wanted, target, python, machine)
        (target / _COMPLETE).write_text(f"{python} {machine}\n")
        _say(
            f"downloaded {len(list(target.iterdir())) - 1} distributions for Python {python} in "
            f"{time.monotonic() - started:.0f} s ({target})"
        )
    return target


def _download(wanted: list[str], target: Path, python: str, machine: str) -> None:
    """`pip download` the binary wheels for `wanted`; a requirement with no wheel for that Python is taken as
    a source distribution, and its own requirements join the wheels to download."""
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(target)]
    tags = [f"--platform=manylinux_2_{minor}_{machine}" for minor in range(17, 40)]
    tags += [f"--platform=manylinux2014_{machine}", f"--platform=linux_{machine}"]
    binary = [*pip, "--only-binary=:all:", f"--python-version={python}", "--implementation=cp", *tags]
    binary += [f"--abi=cp{python.replace('.', '')}", "--abi=abi3", "--abi=none"]
    pending = [*wanted, "setuptools", "wheel"]
    for _ in range(20):
        result = subprocess.run([*binary, *pending], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        missing = re.search(r"No matching distribution found for (\S+)", result.stderr)
        names = {_canonical(r): r for r in pending}
        if missing is None or _canonical(missing.group(1)) not in names:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise RuntimeError(f"pip download for Python {python} failed:\n{tail}")
        requirement = names[_canonical(missing.group(1))]
        _run([*pip, "--no-deps", "--no-binary=:all:", requirement])
        pending = [r for r in pending if r != requirement] + _sdist_requires(target, _canonical(requirement))
    raise RuntimeError(f"pip download for Python {python}: too many source-only requirements")


def _sdist_requires(folder: Path, name: str) -> list[str]:
    """The unconditional requirements of the source distribution of `name` in `folder` (egg-info or PKG-INFO)."""
    for path in folder.glob("*.tar.gz"):
        if _canonical(path.name.rsplit("-", 1)[0]) != name:
            continue
        with tarfile.open(path) as tar:
            members = {m.name.split("/", 1)[-1]: m for m in tar.getmembers()}
            requires = next((m for n, m in members.items() if n.endswith(".egg-info/requires.txt")), None)
            if requires is not None:
                handle = tar.extractfile(requires)
                text = handle.read().decode() if handle is not None else ""
                return [line.strip() for line in text.split("\n[", 1)[0].splitlines() if line.strip()]
            info = members.get("PKG-INFO")
            handle = tar.extractfile(info) if info is not None else None
            text = handle.read().decode() if handle is not None else ""
            return [
                line.partition(":")[2].strip()
                for line in text.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line
            ]
    return []


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


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
