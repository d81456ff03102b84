"""`--sm-reuse`: a built-in check's verdict kept in pytest's cache, replayed while nothing it depends on changed.

A CI run of an unchanged image pays the whole suite again (minutes of training) to learn what it already knows.
Each kept verdict is filed under a key (`verdict_key`) that digests everything a verdict can depend on:

- the plugin: its version and a digest of its own source (an edited checkout is another plugin);
- the image by its id (`sha256:...`, not its tag): one changed byte in a layer or in the config is another id;
- the effective request: the --sm-job request after the options' overrides (hyperparameters, environment,
  instance type, channels), with the image id as its TrainingImage;
- the content of every local channel (a streaming sha256 of every file: size and mtime would miss a byte
  rewritten in place, and a fresh CI checkout would change every mtime);
- every option that can change a verdict (every `sm_*` option but those that only say where output goes or how
  the run is scheduled: `OUTPUT_ONLY`);
- what was measured about the engine and that a verdict can depend on (data path, S3 from containers, version,
  capacity, runtimes);
- the check's id.

One key shape for every check of an image: any change reruns all of that image's checks. A finer map (which
check reads which hyperparameter, which channel) would be a second copy of what each check does, and would
silently go stale when a check changes; rerunning the image's checks is always correct.

Kept: passes; failures the check itself decided (`CheckContext.fail`, or blocked by SM-RUN-DEFAULT); structural
skips (the clause does not apply to this job or image). Never kept: anything the environment decided, i.e. an
engine fault, a failure that may be the engine's (containers cannot reach S3), a crash (an exception that is no
verdict), an error in setup, and every "not tested" skip (and so its --sm-strict failure): those depend on the
moment and the machine, and a rerun may well test the clause. `--sm-strict` is part of the key, so a verdict made
without it is never replayed under it, and the reverse.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import stat
import threading
import time
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import pytest

from .jobs import local_channel_uri, with_overrides
from .platform import Engine, EngineError
from .platform.data_path import choose_data_path
from .session import ContractSession
from .settings import OPTIONS, Settings

__all__ = [
    "CACHE_DIR",
    "OUTPUT_ONLY",
    "VERDICTS_KEY",
    "WORKER_KEYS",
    "Verdict",
    "VerdictCache",
    "channel_fingerprint",
    "effective_request",
    "file_digest",
    "plugin_fingerprint",
    "reused_property",
    "verdict_key",
    "verdict_options",
    "worth_keeping",
]

#: Under pytest's cache directory (.pytest_cache/v/...): one JSON file per kept verdict.
CACHE_DIR = "sagemaker-contract/verdicts"
#: Per image tag: the digests of the last key's parts, to say what changed when nothing was reused.
_LAST_DIR = "sagemaker-contract/last-key"
#: Options that never change a verdict: which images (each is keyed by its id), where reports go, whether
#: resources are kept, how many checks run at once, whether the suite is collected, and reuse itself.
OUTPUT_ONLY = frozenset({"sm_image", "sm_report", "sm_html", "sm_keep", "sm_parallel", "sm_no_suite", "sm_reuse"})
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks (constant memory for any size)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def channel_fingerprint(path: Path) -> str:
    """A digest of what a channel stages: every file's path, permission bits and bytes; a link's target.

    A directory is walked in name order, so the digest does not depend on the order the filesystem lists it.
    """
    entries: list[list[Any]] = []
    if not path.is_dir():
        return _digest([["file", "", _mode(path), file_digest(path)]])
    for top, dirs, files in os.walk(path):
        dirs.sort()
        base = Path(top)
        for name in sorted([*dirs, *files]):
            entry = base / name
            relative = entry.relative_to(path).as_posix()
            if entry.is_symlink():
                entries.append(["link", relative, os.readlink(entry)])
                if entry.is_file():
                    entries.append(["file", relative, _mode(entry), file_digest(entry)])
            elif entry.is_dir():
                entries.append(["dir", relative, _mode(entry)])
            elif entry.is_file():
                entries.append(["file", relative, _mode(entry), file_digest(entry)])
            else:
                entries.append(["other", relative])
    return _digest(entries)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=1)
def plugin_fingerprint() -> str:
    """The plugin's version and a digest of its own source files: a development checkout changes with its code."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    try:
        version = importlib.metadata.version("pytest-sagemaker-contract")
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        version = "unknown"
    return f"{version}+{digest.hexdigest()[:16]}"


def verdict_options(settings: Settings) -> dict[str, Any]:
    """Every option's value that can change a verdict, defaults included (a default that changes is another
    plugin version). Channels are keyed by content (`channel_fingerprint`), the --sm-job request by its content."""
    options: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.name in OUTPUT_ONLY or opt.name == "sm_channel":
            continue
        attrs = opt.attr if isinstance(opt.attr, tuple) else (opt.attr,)
        for attr in attrs:
            if attr != "job_file":
                options[attr] = getattr(settings, attr)
    return json.loads(json.dumps(options, sort_keys=True, default=str))  # type: ignore[no-any-return]


def effective_request(settings: Settings, image_id: str, instance_type: str) -> dict[str, Any]:
    """The request the suite starts from: the --sm-job request after the options, with the image id in it."""
    return with_overrides(
        settings.job_request,
        name="sm-contract-reuse",
        image=image_id,
        channel_uris={name: local_channel_uri("reuse", name) for name in settings.channels},
        hyperparameters=settings.hyperparameters,
        environment=settings.environment,
        instance_type=instance_type,
    )


def verdict_key(
    *,
    plugin: str,
    image_id: str,
    request: Mapping[str, Any],
    channels: Mapping[str, str],
    options: Mapping[str, Any],
    engine: Mapping[str, Any],
    check_id: str,
) -> str:
    """The cache key of one check's verdict: a sha256 over every part (see the module docstring)."""
    return _digest(_parts(plugin, image_id, request, channels, options, engine) | {"check": check_id})


def _parts(
    plugin: str,
    image_id: str,
    request: Mapping[str, Any],
    channels: Mapping[str, str],
    options: Mapping[str, Any],
    engine: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "plugin": plugin,
        "image": image_id,
        "request": request,
        "channels": dict(channels),
        "options": dict(options),
        "engine": dict(engine),
    }


def worth_keeping(outcome: str, skip_kind: str, failed_by_check: bool, environment_fault: bool) -> bool:
    """Whether a verdict may be replayed: one about the image, never one the environment decided."""
    if environment_fault:
        return False
    if outcome == "passed":
        return True
    if outcome == "skipped":
        return skip_kind == "structural"
    if outcome == "failed":
        return failed_by_check and skip_kind != "untested"
    return False


class NoteLike(Protocol):
    """What a check says about itself (`contract.suite.CheckNote`), as far as a verdict keeps it."""

    message: str
    image_id: str
    log_tail: str
    log_path: str
    warnings: list[str]
    sections: list[tuple[str, str]]
    duration_s: float | None
    skip_kind: str


@dataclass
class Verdict:
    """One kept verdict: what the check's report said, and when and where it was decided."""

    outcome: str
    #: The outcome's own text (pytest's failure or skip message).
    reason: str
    message: str = ""
    skip_kind: str = ""
    image_id: str = ""
    log_tail: str = ""
    log_path: str = ""
    warnings: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    #: The check's running time when it was decided.
    duration_s: float = 0.0
    #: The `sm_metrics` and `sm_timeline` properties as they were.
    metrics: str | None = None
    timeline: str | None = None
    #: The session that decided it, and when (epoch seconds).
    run_id: str = ""
    at: float = 0.0

    @classmethod
    def of(
        cls, note: NoteLike, outcome: str, reason: str, properties: Sequence[tuple[str, object]], run_id: str
    ) -> Verdict:
        props = dict(properties)
        return cls(
            outcome=outcome,
            reason=reason,
            message=note.message,
            skip_kind=note.skip_kind,
            image_id=note.image_id,
            log_tail=note.log_tail,
            log_path=note.log_path,
            warnings=list(note.warnings),
            sections=list(note.sections),
            duration_s=round(note.duration_s or 0.0, 3),
            metrics=_text_or_none(props.get("sm_metrics")),
            timeline=_text_or_none(props.get("sm_timeline")),
            run_id=run_id,
            at=round(time.time(), 3),
        )

    @classmethod
    def from_json(cls, data: object) -> Verdict | None:
        """A cached entry back; None when it is not one (another version's, or a torn write)."""
        if not isinstance(data, dict) or data.get("outcome") not in ("passed", "failed", "skipped"):
            return None
        try:
            verdict = cls(**data)
            verdict.sections = [(str(title), str(text)) for title, text in verdict.sections]
        except (TypeError, ValueError):
            return None
        return verdict

    def replay(self, note: NoteLike, user_properties: MutableSequence[tuple[str, object]]) -> BaseException | None:
        """Fill the check's note as the run did, and return the outcome to raise (None: a pass)."""
        note.message = self.message
        note.skip_kind = self.skip_kind
        note.image_id = self.image_id
        note.log_tail = self.log_tail
        # The deciding session's full log, while it is still there (a fresh CI runner has only the tail kept here).
        note.log_path = self.log_path if self.log_path and Path(self.log_path).is_file() else ""
        note.warnings[:] = self.warnings
        note.sections[:] = self.sections
        note.duration_s = 0.0
        if self.metrics is not None:
            user_properties.append(("sm_metrics", self.metrics))
        if self.outcome == "failed":
            return pytest.fail.Exception(self.reason, pytrace=False)
        if self.outcome == "skipped":
            return pytest.skip.Exception(self.reason, _use_item_location=True)
        return None


def reused_property(verdict: Verdict) -> tuple[str, object]:
    """`sm_reused`: a JSON object of when, by which session and in how long the verdict was first made."""
    return ("sm_reused", json.dumps({"at": verdict.at, "run_id": verdict.run_id, "duration_s": verdict.duration_s}))


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class CacheLike(Protocol):
    """pytest's `config.cache`, as far as it is used here."""

    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: object) -> None: ...


@dataclass
class _ImageKey:
    """The parts of an image's keys that every check shares (None: the image cannot be keyed, nothing is reused)."""

    parts: dict[str, Any] | None
    #: Which parts changed since the last session that keyed this image (for the summary), if any did.
    changed: list[str] = field(default_factory=list)
    #: Why the image could not be keyed (for the summary).
    unkeyed: str = ""


class VerdictCache:
    """The session's view of the kept verdicts: looks them up (once per check) and keeps new ones."""

    def __init__(
        self, cache: CacheLike, session: ContractSession, keyed: Mapping[str, dict[str, Any] | None] | None = None
    ) -> None:
        self.cache = cache
        self.session = session
        self._lock = threading.Lock()
        #: An xdist worker starts from its controller's keys (`image_keys`): one hashing of the channels, and
        #: one key for every worker even if a tag moves meanwhile.
        self._images: dict[str, _ImageKey] = {image: _ImageKey(parts) for image, parts in (keyed or {}).items()}
        self._found: dict[tuple[str, str], Verdict | None] = {}
        #: Seconds spent hashing channels (measured once per session).
        self.channel_seconds = 0.0
        self._channels: dict[str, str] | None = None

    def lookup(self, image: str, check_id: str) -> Verdict | None:
        """The kept verdict of `check_id` on `image` under this session's key, or None (run it)."""
        with self._lock:
            if (image, check_id) not in self._found:
                key = self._key(image, check_id)
                found = Verdict.from_json(self.cache.get(f"{CACHE_DIR}/{key}", None)) if key else None
                self._found[(image, check_id)] = found
            return self._found[(image, check_id)]

    def keep(self, image: str, check_id: str, verdict: Verdict) -> bool:
        """File `verdict` under the key the check was looked up with; not when the image changed meanwhile."""
        with self._lock:
            base = self._images.get(image)
            parts = base.parts if base is not None else None
            if parts is None or (verdict.image_id and verdict.image_id != parts["image"]):
                return False
            key = _digest(parts | {"check": check_id})
        self.cache.set(f"{CACHE_DIR}/{key}", asdict(verdict))
        return True

    def what_changed(self, images: Sequence[str]) -> list[str]:
        """One summary line per image whose key changed since the last session that keyed it (why it ran again)."""
        lines = []
        with self._lock:
            for image in images:
                base = self._images.get(image)
                if base is not None and base.unkeyed:
                    lines.append(f"sagemaker-contract: --sm-reuse: {image}: nothing reused or kept ({base.unkeyed})")
                changed = base.changed if base is not None else []
                if changed:
                    shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
                    lines.append(
                        f"sagemaker-contract: --sm-reuse: {image} ran again; changed since its last run: {shown}"
                    )
        if self.channel_seconds >= 1.0:
            lines.append(
                f"sagemaker-contract: --sm-reuse: hashing the channels' content took {self.channel_seconds:.1f} s"
            )
        return lines

    def image_keys(self, images: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Each image's key parts (None: not keyable), computed once: what an xdist controller hands its workers."""
        with self._lock:
            return {image: self._image_parts(image) for image in images}

    def _key(self, image: str, check_id: str) -> str | None:
        parts = self._image_parts(image)
        return _digest(parts | {"check": check_id}) if parts is not None else None

    def _image_parts(self, image: str) -> dict[str, Any] | None:
        if image not in self._images:
            self._images[image] = self._image_key(image)
        return self._images[image].parts

    def _image_key(self, image: str) -> _ImageKey:
        settings = self.session.settings
        try:
            engine = self.session.engine()  # the session's own connection and measurements, not another
        except EngineError as exc:
            return _ImageKey(None, unkeyed=f"the engine cannot be reached: {exc}")
        try:
            image_id = str(engine.inspect_image(image)["Id"])
        except Exception:  # not here (yet): the checks run, and say so
            return _ImageKey(None, unkeyed="the engine has no such image")
        facts = self._engine_facts(engine)
        if facts is None:
            return _ImageKey(None, unkeyed="the engine could not be measured")
        try:
            channels = self._channel_digests()
        except OSError as exc:
            return _ImageKey(None, unkeyed=f"a channel could not be read: {exc}")
        parts = _parts(
            plugin_fingerprint(),
            image_id,
            effective_request(settings, image_id, self.session.instance_type()),
            channels,
            verdict_options(settings),
            facts,
        )
        return _ImageKey(parts, self._compare_with_last(image, parts))

    def _channel_digests(self) -> dict[str, str]:
        if self._channels is None:
            started = time.monotonic()
            self._channels = {
                name: channel_fingerprint(path) for name, path in sorted(self.session.settings.channels.items())
            }
            self.channel_seconds = time.monotonic() - started
        return self._channels

    def _engine_facts(self, engine: Engine) -> dict[str, Any] | None:
        """What a verdict can depend on about the engine; stable across fresh CI runners of one kind (so no
        engine id, no addresses)."""
        unreachable = self.session.container_s3_unavailable()  # measures the topology once, if not yet
        topology = self.session.topology
        if topology is None:
            return None
        try:
            info = engine.info()
        except Exception:
            return None
        return {
            "url": topology.engine_url,
            "data_path": choose_data_path(self.session.settings.data_path, topology),
            "shared_fs": topology.shared_fs,
            "root": topology.root,
            "bridge": topology.has_bridge,
            "s3_from_containers": unreachable is None,
            "version": info.get("ServerVersion"),
            "os": [info.get("OSType"), info.get("Architecture")],
            "cgroup": info.get("CgroupVersion"),
            "cpus": info.get("NCPU"),
            "memory_gib": round(float(info.get("MemTotal") or 0) / 2**30),
            "runtimes": sorted(info.get("Runtimes") or {}),
        }

    def _compare_with_last(self, image: str, parts: Mapping[str, Any]) -> list[str]:
        """Which parts differ from the last session's key for this tag (digests only are kept), then keep these."""
        digests = _part_digests(parts)
        last_key = f"{_LAST_DIR}/{hashlib.sha256(image.encode()).hexdigest()[:32]}"
        last = self.cache.get(last_key, None)
        self.cache.set(last_key, digests)
        if not isinstance(last, dict):
            return []
        return [name for name, digest in digests.items() if last.get(name) != digest]


def _part_digests(parts: Mapping[str, Any]) -> dict[str, str]:
    """One digest per part, options and channels and request keys one by one (so the summary can name them)."""
    out: dict[str, str] = {}
    for name in ("plugin", "image", "engine"):
        out[name] = _digest(parts[name])
    for option, value in parts["options"].items():
        out[f"option {option}"] = _digest(value)
    for channel, digest in parts["channels"].items():
        out[f"channel {channel}"] = digest
    for field_name, value in parts["request"].items():
        if field_name not in ("TrainingJobName",):
            out[f"request {field_name}"] = _digest(value)
    return out


VERDICTS_KEY = pytest.StashKey[VerdictCache]()
#: The `workerinput` entry in which an xdist controller hands its workers the images' key parts.
WORKER_KEYS = "sm_contract_reuse_keys"
