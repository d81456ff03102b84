"""Static checks of a training image: what its config and filesystem say before anything runs.

These catch the contract breaches that are visible without starting a container (contract §1 and
§8). The verdicts follow what SageMaker really does, not the strictest reading of the docs: an image
AWS documents as correct must pass, or the gate gets switched off.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import shlex
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from .errors import PlatformError
from .platform.engine import Engine, ImageNotFound

__all__ = [
    "DOCKER_DEFAULT_PATH",
    "INSPECT_LABEL",
    "INSPECT_LABEL_VALUE",
    "STATIC_CHECKS",
    "CheckOutcome",
    "FileEntry",
    "ImageFacts",
    "ImageMissingError",
    "check_exec_form",
    "check_no_driver",
    "check_no_tini",
    "check_opt_ml_empty",
    "check_train_on_path",
    "read_image",
]

#: The PATH Docker gives a container whose image sets none.
DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSPECT_LABEL = "sm-contract"
INSPECT_LABEL_VALUE = "inspect"

_MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS: the same path fails in the image and here
_SHOWN_PATHS = 5
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh"})
_TINI_NAMES = frozenset({"tini", "tini-static", "tini-amd64", "docker-init"})
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`\\\n*?\[\]{}~]")
_RESERVED_DIRS = ("/opt/ml/input", "/opt/ml/model", "/opt/ml/output", "/opt/ml/checkpoints")
_LOADER_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/lib",
)
_DRIVER_LIBRARY = re.compile(r"^(libcuda|libnvidia-ml)\.so(\..*)?$")
_DRIVER_FIX = (
    "ship the CUDA toolkit only; the driver (libcuda, libnvidia-ml, nvidia-smi) comes from the host's "
    "NVIDIA runtime; a bundled one breaks on hosts with another driver version"
)


class ImageMissingError(PlatformError, ImageNotFound):  # type: ignore[misc]
    """The image is not on the engine; a plain one-line message instead of docker-py's HTTP detail."""

    def __init__(self, image: str) -> None:
        super().__init__(
            f"image {image!r} is not on the Docker engine: build or load it first (no registry is consulted)"
        )
        self.image = image

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FileEntry:
    """One path of the image filesystem, from its tar header only."""

    path: str
    kind: str
    mode: int
    linkname: str | None = None


@dataclass(frozen=True)
class ImageFacts:
    """Everything the static checks may look at; built by :func:`read_image` or by hand in tests."""

    image: str
    image_id: str
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    env: Mapping[str, str]
    user: str
    workdir: str
    files: Mapping[str, FileEntry] = field(repr=False)

    def resolve(self, path: str) -> FileEntry | None:
        """The entry ``path`` names once every symlink on the way is followed, as the kernel would."""
        real = self._realpath(path)
        if real is None:
            return None
        entry = self.files.get(real)
        if entry is None and real == "/":
            return FileEntry("/", "dir", 0o755)
        return entry

    def find_on_path(self, name: str) -> str | None:
        """Where an exec of bare ``name`` lands: the first executable file along the image's PATH."""
        if not name:
            return None
        if "/" in name:
            return name if _is_executable(self.resolve(name)) else None
        for directory in self.path_dirs():
            candidate = posixpath.join(directory, name)
            if _is_executable(self.resolve(candidate)):
                return candidate
        return None

    def has_shell(self) -> bool:
        """Whether ``/bin/sh`` exists and can be executed (scripts and shell-form commands need it)."""
        return _is_executable(self.resolve("/bin/sh"))

    @property
    def path_variable(self) -> str:
        """The PATH a process in the container sees: the image's own, else Docker's default."""
        return self.env.get("PATH", DOCKER_DEFAULT_PATH)

    def path_dirs(self) -> tuple[str, ...]:
        """PATH as absolute directories; empty and relative entries are dropped, as they depend on cwd."""
        return tuple(d for d in self.path_variable.split(":") if d.startswith("/"))

    def realdir(self, path: str) -> str | None:
        """The real path of a directory (symlinks followed), or None if it is missing or not a directory."""
        real = self._realpath(path)
        if real is None:
            return None
        if real == "/":
            return real
        entry = self.files.get(real)
        if entry is None:
            return real if real in self._parents else None
        return real if entry.kind == "dir" else None

    def _realpath(self, path: str) -> str | None:
        """Component-wise symlink resolution; None on a loop, too many hops or a non-directory parent.

        A missing final component yields its would-be path, so callers can tell "absent" from "broken".
        """
        start = path if path.startswith("/") else posixpath.join(self.workdir or "/", path)
        pending = [part for part in reversed(start.split("/")) if part]
        current = "/"
        hops = 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, part)
            entry = self.files.get(candidate)
            if entry is None:
                if pending and candidate not in self._parents:
                    return None
                current = candidate
                continue
            if entry.kind == "symlink":
                hops += 1
                if hops > _MAX_SYMLINK_HOPS or not entry.linkname:
                    return None
                if entry.linkname.startswith("/"):
                    current = "/"
                pending.extend(part for part in reversed(entry.linkname.split("/")) if part)
                continue
            if pending and entry.kind != "dir":
                return None
            current = candidate
        return current

    @cached_property
    def _parents(self) -> frozenset[str]:
        """Every directory that has entries below it, listed or not (hand-made facts may omit dirs)."""
        parents: set[str] = set()
        for path in self.files:
            parent = posixpath.dirname(path)
            while parent not in parents and parent != "/":
                parents.add(parent)
                parent = posixpath.dirname(parent)
        return frozenset(parents)


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of one static check, phrased for the person who has to fix the image."""

    id: str
    clause: str
    outcome: str
    message: str
    warnings: tuple[str, ...] = ()


def _is_executable(entry: FileEntry | None) -> bool:
    return entry is not None and entry.kind in ("file", "hardlink") and bool(entry.mode & 0o111)


def _normalise(name: str) -> str:
    """A tar member name as an absolute path: ``./usr/bin/`` → ``/usr/bin``."""
    return posixpath.normpath("/" + name.lstrip("/"))


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "other"


def _entry(member: tarfile.TarInfo) -> FileEntry:
    kind = _kind(member)
    linkname: str | None = None
    if kind == "symlink":
        linkname = member.linkname
    elif kind == "hardlink":
        linkname = _normalise(member.linkname)
    return FileEntry(path=_normalise(member.name), kind=kind, mode=member.mode & 0o7777, linkname=linkname)


class _ChunkReader(io.RawIOBase):
    """A read-only file over docker-py's chunk generator, so tarfile can stream the export."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _read_entries(chunks: Iterator[bytes]) -> dict[str, FileEntry]:
    """Headers only: data blocks stream past and the member list is not kept, so memory stays small."""
    files: dict[str, FileEntry] = {}
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:
        seen: list[tarfile.TarInfo] = vars(archive)["members"]  # tarfile keeps every header it read
        while (member := archive.next()) is not None:
            entry = _entry(member)
            files[entry.path] = entry
            seen.clear()
    files.setdefault("/", FileEntry("/", "dir", 0o755))
    return files


def _tuple_or_none(value: Any) -> tuple[str, ...] | None:
    if not value:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _parse_env(pairs: Iterable[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        env[key] = value
    return env


def read_image(engine: Engine, image: str) -> ImageFacts:
    """Read an image's config and the header of every file in it, without running it.

    The filesystem comes from a container that is created but never started, exported as a tar stream:
    that is the merged view a training job would see, and nothing in the image gets to execute. The engine's
    owner labels go on that container, so a session killed during the export leaves it to the next session's
    reaping.
    """
    try:
        attrs = engine.inspect_image(image)
    except ImageNotFound:
        raise ImageMissingError(image) from None
    config = attrs.get("Config") or {}
    container_id = engine.create_utility(
        attrs["Id"],
        entrypoint=["/sm-contract-inspect-never-started"],
        command=["never-started"],
        labels={INSPECT_LABEL: INSPECT_LABEL_VALUE},
        network_disabled=True,
    )
    try:
        chunks = engine.export(container_id)
        try:
            files = _read_entries(chunks)
            for _ in chunks:
                pass
        finally:
            chunks.close()
    finally:
        engine.remove(container_id)
    return ImageFacts(
        image=image,
        image_id=str(attrs["Id"]),
        entrypoint=_tuple_or_none(config.get("Entrypoint")),
        cmd=_tuple_or_none(config.get("Cmd")),
        env=MappingProxyType(_parse_env(config.get("Env"))),
        user=str(config.get("User") or ""),
        workdir=str(config.get("WorkingDir") or "/"),
        files=MappingProxyType(files),
    )


def _show(argv: Iterable[str]) -> str:
    return json.dumps(list(argv))


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN_PATHS])
    more = len(paths) - _SHOWN_PATHS
    return f"{shown} and {more} more" if more > 0 else shown


def _shell_command(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """``(command, extra args)`` for ``<shell> [options] -c <command> ...``, Docker's shell form."""
    if posixpath.basename(argv[0]) not in _SHELLS:
        return None
    saw_c = False
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg in ("-o", "+o"):
            index += 2
        elif re.fullmatch(r"[-+][A-Za-z]+", arg):
            saw_c = saw_c or (arg[0] == "-" and "c" in arg)
            index += 1
        else:
            index += arg == "--"
            break
    if not saw_c or index >= len(argv):
        return None
    return argv[index], argv[index + 1 :]


def _strip_env(argv: tuple[str, ...]) -> tuple[str, ...]:
    """``/usr/bin/env [-i] [VAR=value]... program ...`` → ``program ...``."""
    if not argv or posixpath.basename(argv[0]) != "env":
        return argv
    rest = list(argv[1:])
    while rest and (rest[0].startswith("-") or "=" in rest[0]):
        rest.pop(0)
    return tuple(rest)


CLAUSE_EXEC_FORM = "contract §1 ENTRYPOINT exec form"
CLAUSE_NO_TINI = "contract §1 no tini"
CLAUSE_TRAIN_ON_PATH = "contract §1 train on PATH"
CLAUSE_OPT_ML = "contract §1 /opt/ml reserved"
CLAUSE_NO_DRIVER = "contract §8 no bundled driver"


def check_exec_form(facts: ImageFacts) -> CheckOutcome:
    """SM-IMG-EXEC-FORM: a shell-form ENTRYPOINT makes sh PID 1 and swallows the ``train`` argument."""
    outcome = _outcome("SM-IMG-EXEC-FORM", CLAUSE_EXEC_FORM)
    if facts.entrypoint is None:
        return outcome("passed", 'no ENTRYPOINT: SageMaker runs "train" as PID 1')
    parsed = _shell_command(facts.entrypoint)
    if parsed is None:
        return outcome("passed", f"ENTRYPOINT is exec form: {_show(facts.entrypoint)}")
    command, extra = parsed
    if extra and command.lstrip().startswith("exec ") and "$@" in command:
        return outcome(
            "passed",
            f'ENTRYPOINT {_show(facts.entrypoint)} execs its program and forwards "$@": PID 1 is the program '
            'and "train" reaches it',
        )
    suggestion = _exec_form_of(command)
    if command.lstrip().startswith("exec ") and suggestion is not None:
        return outcome(
            "passed",
            f"ENTRYPOINT {_show(facts.entrypoint)} is shell form but `exec`s its program, so PID 1 is "
            f"{posixpath.basename(suggestion[0])} and receives SIGTERM",
            (
                f'SM-IMG-EXEC-FORM: the shell form drops the "train"/"serve" argument SageMaker passes; fine while '
                f"the program ignores its arguments. AWS documents exec form: ENTRYPOINT {_show(suggestion)}",
            ),
        )
    shell = posixpath.basename(facts.entrypoint[0])
    if suggestion is not None:
        program = posixpath.basename(suggestion[0])
        fix = f"Use exec form: ENTRYPOINT {_show(suggestion)}"
    else:
        program = "your program"
        fix = (
            'Move the commands into a script that ends with `exec <program> "$@"` and use exec form: '
            'ENTRYPOINT ["/opt/program/train.sh"]'
        )
    seen = " ".join(facts.entrypoint[: len(facts.entrypoint) - len(extra) - 1])
    return outcome(
        "failed",
        f"ENTRYPOINT is shell form ({seen} {json.dumps(command, ensure_ascii=False)}): PID 1 is {shell}, "
        f'SIGTERM never reaches {program} and the "train" argument is dropped. {fix}',
    )


def _exec_form_of(command: str) -> tuple[str, ...] | None:
    """The argv a simple shell command amounts to; None when it relies on shell syntax."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if argv and argv[0] == "exec":
        argv = argv[1:]
    if not argv or any(_SHELL_SYNTAX.search(word) for word in argv) or "=" in argv[0]:
        return None
    return tuple(argv)


def check_no_tini(facts: ImageFacts) -> CheckOutcome:
    """SM-IMG-NO-TINI: tini as entrypoint mishandles the ``train``/``serve`` argument SageMaker passes."""
    outcome = _outcome("SM-IMG-NO-TINI", CLAUSE_NO_TINI)
    if facts.entrypoint is None:
        return outcome("passed", "no ENTRYPOINT, so no tini")
    argv = _strip_env(facts.entrypoint)
    if not argv or posixpath.basename(argv[0]) not in _TINI_NAMES:
        return outcome("passed", f"ENTRYPOINT does not start with tini: {_show(facts.entrypoint)}")
    program = _after_tini_options(argv[1:]) or facts.cmd
    example = _show(program) if program else '["python", "train.py"]'
    return outcome(
        "failed",
        f"ENTRYPOINT runs {posixpath.basename(argv[0])} ({_show(facts.entrypoint)}): tini is confused by the "
        f'"train"/"serve" argument SageMaker passes. Use exec form of the real program: '
        f"ENTRYPOINT {example}, and handle SIGTERM in it",
    )


def _after_tini_options(args: tuple[str, ...]) -> tuple[str, ...]:
    """The program tini would run: after ``--``, or after its options (``-p``/``-e`` take a value)."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return args[index + 1 :]
        if not arg.startswith("-"):
            return args[index:]
        index += 2 if arg in ("-p", "-e") else 1
    return ()


def check_train_on_path(facts: ImageFacts) -> CheckOutcome:
    """SM-IMG-TRAIN-ON-PATH: without an ENTRYPOINT, ``docker run IMAGE train`` must find ``train``."""
    outcome = _outcome("SM-IMG-TRAIN-ON-PATH", CLAUSE_TRAIN_ON_PATH)
    if facts.entrypoint is not None:
        parsed = _shell_command(facts.entrypoint) if facts.entrypoint else None
        if parsed is not None and not ("$@" in parsed[0] and parsed[1]):
            return outcome(
                "skipped",
                f"not applicable: the image has an ENTRYPOINT ({_show(facts.entrypoint)}); it is shell form, so "
                'the "train" argument never reaches its program (see SM-IMG-EXEC-FORM)',
            )
        return outcome(
            "skipped",
            f'not applicable: ENTRYPOINT {_show(facts.entrypoint)} receives "train" as its argument',
        )
    found = facts.find_on_path("train")
    if found is not None:
        return outcome("passed", f'no ENTRYPOINT; "train" runs as PID 1 from {found}')
    unusable = [
        path
        for path in (posixpath.join(d, "train") for d in facts.path_dirs())
        if (entry := facts.resolve(path)) is not None and entry.kind in ("file", "hardlink")
    ]
    if unusable:
        fix = f"make it executable (chmod +x {unusable[0]}), or add an exec-form ENTRYPOINT"
    else:
        fix = (
            'add an exec-form ENTRYPOINT (ENTRYPOINT ["python", "train.py"]) '
            'or install an executable "train" in /usr/local/bin'
        )
    return outcome(
        "failed",
        f'no ENTRYPOINT and no executable "train" on PATH (PATH={facts.path_variable}): SageMaker runs '
        f'"docker run IMAGE train" and the job fails with exec: "train": executable file not found in $PATH. '
        f"Fix: {fix}",
    )


def check_opt_ml_empty(facts: ImageFacts) -> CheckOutcome:
    """SM-IMG-OPT-ML-EMPTY: the platform mounts over /opt/ml/{input,model,output,checkpoints}."""
    outcome = _outcome("SM-IMG-OPT-ML-EMPTY", CLAUSE_OPT_ML)
    root = facts.realdir("/opt/ml")
    if root is None:
        return outcome("passed", "the image ships nothing under /opt/ml")
    hidden: list[str] = []
    elsewhere: list[str] = []
    prefix = root + "/"
    for path, entry in facts.files.items():
        if entry.kind == "dir" or not path.startswith(prefix):
            continue
        shown = "/opt/ml/" + path[len(prefix) :]
        if any(shown == d or shown.startswith(d + "/") for d in _RESERVED_DIRS):
            hidden.append(shown)
        else:
            elsewhere.append(shown)
    hidden.sort()
    elsewhere.sort()
    warnings: tuple[str, ...] = ()
    if elsewhere:
        warnings = (
            f"SageMaker reserves /opt/ml; the image ships {len(elsewhere)} path(s) there "
            f"({_listing(elsewhere)}): "
            "works today because the platform only mounts input/model/output/checkpoints, but AWS warns such "
            "data may no longer be visible; /opt/program is the safe place",
        )
    if hidden:
        return outcome(
            "failed",
            f"/opt/ml is reserved: the image ships {len(hidden)} path(s) under the directories SageMaker "
            f"mounts ({_listing(hidden)}). Fix: the platform mounts over these directories at run time, so "
            "what the image ships there is hidden; move it elsewhere (e.g. /opt/program) or deliver it "
            "through a channel",
            warnings,
        )
    if elsewhere:
        return outcome(
            "passed",
            "nothing under the mounted /opt/ml/{input,model,output,checkpoints}; see the warning",
            warnings,
        )
    return outcome("passed", "nothing under /opt/ml but (at most) empty directories")


def check_no_driver(facts: ImageFacts) -> CheckOutcome:
    """SM-IMG-NO-DRIVER: a bundled NVIDIA driver shadows the host's and breaks on other driver versions."""
    outcome = _outcome("SM-IMG-NO-DRIVER", CLAUSE_NO_DRIVER)
    ld_path = facts.env.get("LD_LIBRARY_PATH", "")
    library_dirs = _real_dirs(facts, (*_LOADER_DIRS, *(d for d in ld_path.split(":") if d.startswith("/"))))
    binary_dirs = _real_dirs(facts, (*facts.path_dirs(), "/usr/bin"))
    bundled: list[str] = []
    dangling: list[str] = []
    allowed: list[str] = []
    for path, entry in facts.files.items():
        name = posixpath.basename(path)
        is_library = _DRIVER_LIBRARY.match(name) is not None
        if entry.kind == "dir" or not (is_library or name == "nvidia-smi"):
            continue
        if _is_cuda_stub_or_compat(path):
            allowed.append(path)
            continue
        parent = posixpath.dirname(path)
        if parent not in (library_dirs if is_library else binary_dirs):
            continue
        if entry.kind == "symlink" and facts.resolve(path) is None:
            dangling.append(path)
        else:
            bundled.append(path)
    bundled.sort()
    dangling.sort()
    allowed.sort()
    warnings: tuple[str, ...] = ()
    if dangling:
        warnings = (
            f"dangling driver symlink(s) {_listing(dangling)}: harmless, the host's NVIDIA runtime supplies the target",
        )
    if bundled:
        return outcome(
            "failed",
            f"the image bundles the NVIDIA driver where the loader or PATH finds it ({_listing(bundled)}). "
            f"Fix: {_DRIVER_FIX}",
            warnings,
        )
    message = "no NVIDIA driver files in loader or PATH directories"
    if allowed:
        message += (
            f"; seen and fine: {_listing(allowed)} (CUDA stubs/ are link-time only; CUDA compat/ is the "
            "forward-compatibility package, used only when the host driver is older)"
        )
    return outcome("passed", message, warnings)


def _real_dirs(facts: ImageFacts, directories: Iterable[str]) -> frozenset[str]:
    """Directories by real path, minus CUDA stubs/compat ones, which are fine even on LD_LIBRARY_PATH."""
    real = (facts.realdir(d) for d in directories)
    return frozenset(d for d in real if d is not None and not _is_cuda_stub_or_compat(d + "/x"))


def _is_cuda_stub_or_compat(path: str) -> bool:
    """Under a ``stubs/`` directory, or the ``compat/`` directory of a CUDA install (``cuda-12.2/compat``)."""
    parts = path.split("/")[:-1]
    return "stubs" in parts or any(
        part == "compat" and index > 0 and parts[index - 1].startswith("cuda") for index, part in enumerate(parts)
    )


def _outcome(check_id: str, clause: str) -> Callable[..., CheckOutcome]:
    def make(outcome: str, message: str, warnings: tuple[str, ...] = ()) -> CheckOutcome:
        return CheckOutcome(check_id, clause, outcome, message, warnings)

    return make


STATIC_CHECKS: Mapping[str, Callable[[ImageFacts], CheckOutcome]] = MappingProxyType(
    {
        "SM-IMG-EXEC-FORM": check_exec_form,
        "SM-IMG-NO-TINI": check_no_tini,
        "SM-IMG-TRAIN-ON-PATH": check_train_on_path,
        "SM-IMG-OPT-ML-EMPTY": check_opt_ml_empty,
        "SM-IMG-NO-DRIVER": check_no_driver,
    }
)
