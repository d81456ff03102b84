"""The plugin's options: command line first, then the ini file; each value remembers where it came from.

`OPTIONS` is the one table: each row holds the flag's name (also the ini key), its help, the parser
that checks the raw value and the `Settings` attribute it fills. A bad value is one usage error that
says what was wrong and what to pass instead.
"""

from __future__ import annotations

import fnmatch
import math
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .jobs import DEFAULT_INSTANCE_TYPE, local_channel_uri, with_overrides
from .platform.gpu import GPU_MODES
from .platform.instances import host_limit, local_capacity
from .report_file import report_path_problem
from .spec import (
    RequestError,
    channel_name_problem,
    file_kind,
    load_request,
    parse_request,
    training_instance_types,
)

__all__ = ["OPTIONS", "Option", "Settings", "add_options", "host_bound", "resolve", "too_many_hosts"]

#: Checks a raw option value (from the command line or the ini file) and returns the attribute's value.
Parser = Callable[["Option", Any], Any]


def _text(opt: Option, value: Any) -> str:
    return str(value)


def _flag(opt: Option, value: Any) -> bool:
    return bool(value)


def _pairs(opt: Option, values: Sequence[str], what: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"{opt.flag} {item!r}: expected {what}=VALUE, e.g. {opt.flag} {example}")
        if key in out and out[key] != value:
            raise pytest.UsageError(
                f"{opt.flag} {key}={out[key]} and {opt.flag} {key}={value}: {key!r} given twice with different "
                "values; give it once"
            )
        out[key] = value
    return out


def _pairs_parser(what: str, example: str) -> Parser:
    def parse(opt: Option, values: Sequence[str]) -> dict[str, str]:
        return _pairs(opt, values, what, example)

    return parse


_MAX_SECONDS = 28 * 24 * 3600


def _seconds(opt: Option, value: Any) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise pytest.UsageError(f"{opt.flag} {value!r}: expected a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise pytest.UsageError(f"{opt.flag} {value}: must be a positive, finite number of seconds")
    if seconds > _MAX_SECONDS:
        raise pytest.UsageError(f"{opt.flag} {value}: at most {_MAX_SECONDS} s (28 days, SageMaker's longest run)")
    return seconds


def _whole(low: int, high: int, what: str) -> Parser:
    def parse(opt: Option, value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise pytest.UsageError(f"{opt.flag} {value!r}: expected a whole number of {what}") from None
        if not low <= number <= high:
            raise pytest.UsageError(f"{opt.flag} {value}: between {low} and {high} {what}")
        return number

    return parse


def _regex(opt: Option, value: Any) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise pytest.UsageError(f"{opt.flag} {value!r}: not a valid regular expression ({exc})") from None
    return str(value)


def _images(opt: Option, value: Sequence[str]) -> list[str]:
    images = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if not images:
        raise pytest.UsageError(f"{opt.flag}: empty image name; pass a local tag like myrepo/algo:latest")
    return images


def _job(opt: Option, value: Any) -> tuple[Path, dict[str, Any]]:
    """The request file, checked as AWS would check it (the API model and the server-side limits); the image is
    the one under test, so the file's own TrainingImage is not required here."""
    path = Path(value)
    try:
        request = load_request(path)
    except RequestError as exc:
        raise pytest.UsageError(f"{opt.flag}: {exc}") from None
    try:
        parse_request(request, image="x")
    except RequestError as exc:
        raise pytest.UsageError(f"{opt.flag} {value}: {exc}") from None
    return path, request


def _channels(opt: Option, values: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    given: dict[str, str] = {}
    for item in values:
        name, sep, path = item.partition("=")
        if not sep or not name:
            raise pytest.UsageError(f"{opt.flag} {item!r}: expected NAME=VALUE, e.g. {opt.flag} train=./data")
        problem = channel_name_problem(name)
        if problem:
            raise pytest.UsageError(f"{opt.flag} {name}=...: {problem}")
        if name in given:
            raise pytest.UsageError(
                f"{opt.flag} {name}={given[name]} and {opt.flag} {name}={path}: channel {name!r} given twice; "
                "each channel once (a directory can hold several files)"
            )
        given[name] = path
        if not path.strip():
            raise pytest.UsageError(f"{opt.flag} {name}=: no path; e.g. {opt.flag} {name}=./data")
        try:
            local = Path(path).expanduser()
        except RuntimeError as exc:  # ~user of no such user
            raise pytest.UsageError(f"{opt.flag} {name}={path}: cannot expand {path.split('/')[0]} ({exc})") from None
        try:
            mode = local.stat().st_mode
        except FileNotFoundError:
            raise pytest.UsageError(f"{opt.flag} {name}={path}: {path} does not exist") from None
        except OSError as exc:
            raise pytest.UsageError(f"{opt.flag} {name}={path}: cannot read {path} ({exc.strerror})") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise pytest.UsageError(
                f"{opt.flag} {name}={path}: {path} is {file_kind(mode)}; a channel is a regular file or a directory "
                "of them (SageMaker copies S3 objects, which have an end)"
            )
        out[name] = local
    return out


def _environment(opt: Option, values: Sequence[str]) -> dict[str, str]:
    env = _pairs(opt, values, "KEY", "EPOCHS=3")
    bad = [k for k in env if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k)]
    if bad:
        raise pytest.UsageError(f"{opt.flag} {bad[0]}=...: Environment keys must match [a-zA-Z_][a-zA-Z0-9_]*")
    return env


def _instance_type(opt: Option, value: Any) -> str:
    text = str(value)
    enum = training_instance_types()
    if text not in enum:
        family = ".".join(text.split(".")[:2])
        close = fnmatch.filter(enum, family + ".*")[:5] if family.startswith("ml.") else []
        hint = f" (e.g. {', '.join(close or [DEFAULT_INSTANCE_TYPE])})"
        raise pytest.UsageError(f"{opt.flag} {value}: not a SageMaker training instance type{hint}")
    return text


def _report(opt: Option, value: Any) -> Path:
    """Checked before the run, so that a report that cannot be written fails in a second, not after the run."""
    path = Path(value)
    problem = report_path_problem(path)
    if problem:
        raise pytest.UsageError(f"{opt.flag} {value}: {problem}")
    return path


def _input_modes(opt: Option, value: Any) -> list[str]:
    modes = [m.strip() for m in str(value).split(",") if m.strip()]
    if not modes or any(m not in ("File", "FastFile", "Pipe") for m in modes):
        raise pytest.UsageError(f"{opt.flag} {value}: expected a comma-separated subset of File,FastFile,Pipe")
    return list(dict.fromkeys(modes))


def _region(opt: Option, value: Any) -> tuple[str, bool]:
    text = str(value).strip()
    if text.lower() == "none":
        return "us-east-1", False
    if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", text):
        return text, True
    raise pytest.UsageError(f"{opt.flag} {value!r}: expected a region like us-east-1, or none")


def _gpus(opt: Option, value: Any) -> str:
    mode = str(value).strip().lower()
    if mode not in GPU_MODES:
        raise pytest.UsageError(f"{opt.flag} {value}: expected one of {', '.join(GPU_MODES)}")
    return mode


def _command(opt: Option, value: Any) -> str:
    if not str(value).strip():
        raise pytest.UsageError(f"{opt.flag}: empty command; e.g. {opt.flag} 'python -c \"import torch\"'")
    return str(value)


def _data_path(opt: Option, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("auto", "bind", "engine"):
        raise pytest.UsageError(f"{opt.flag} {value}: expected auto, bind or engine")
    return text


def _on_off(opt: Option, value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in ("on", "off"):
        raise pytest.UsageError(f"{opt.flag} {value}: expected on or off")
    return text == "on"


@dataclass(frozen=True)
class Option:
    #: The ini key; the flag is --sm-<name with dashes>.
    name: str
    #: The `Settings` attribute(s) the parsed value fills (a tuple: the parser returns one value each).
    attr: str | tuple[str, ...]
    help: str
    parse: Parser = _text
    kind: str = "string"  # string | list | bool
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "sm_image",
        "images",
        "training image to check (repeatable: one contract suite per image)",
        _images,
        "list",
        "IMAGE",
    ),
    Option(
        "sm_job",
        ("job_file", "job_request"),
        "CreateTrainingJob request JSON (as for --cli-input-json) the runs start from",
        _job,
        metavar="FILE",
    ),
    Option(
        "sm_channel",
        "channels",
        "stage a local file or directory as channel NAME (repeatable)",
        _channels,
        "list",
        "NAME=PATH",
    ),
    Option(
        "sm_hyperparameter",
        "hyperparameters",
        "set a hyperparameter for every run (repeatable)",
        _pairs_parser("KEY", "epochs=3"),
        "list",
        "KEY=VALUE",
    ),
    Option(
        "sm_env",
        "environment",
        "set a container Environment entry for every run (repeatable)",
        _environment,
        "list",
        "KEY=VALUE",
    ),
    Option(
        "sm_instance_type",
        "instance_type",
        f"ResourceConfig.InstanceType for the runs (default: the job's, or {DEFAULT_INSTANCE_TYPE})",
        _instance_type,
        metavar="TYPE",
    ),
    Option(
        "sm_expect_model",
        "expect_model",
        "glob the model.tar.gz must hold a file for (repeatable; default: any file)",
        lambda opt, value: list(value),
        "list",
        "GLOB",
    ),
    Option(
        "sm_keep", "keep", "keep containers, networks and job directories for debugging, and print where", _flag, "bool"
    ),
    Option(
        "sm_strict",
        "strict",
        "a contract check that could not be tested fails instead of skipping (README: which skips are structural "
        "and stay skips)",
        _flag,
        "bool",
    ),
    Option(
        "sm_report",
        "report",
        "write the machine-readable contract report (JSON) to FILE (never an input: not the --sm-job file, not in a "
        "--sm-channel)",
        _report,
        metavar="FILE",
    ),
    Option(
        "sm_html",
        "html",
        "write a self-contained HTML contract report (table, log tails, process trees, job timelines) to FILE",
        _report,
        metavar="FILE",
    ),
    Option(
        "sm_timeout",
        "timeout_s",
        "seconds one training run may take before the check fails (default 600)",
        _seconds,
        metavar="SECONDS",
    ),
    Option(
        "sm_stop_after",
        "stop_after_s",
        "SIGTERM checks: send SIGTERM this many seconds after the container starts (default 5)",
        _seconds,
        metavar="SECONDS",
    ),
    Option(
        "sm_stop_on_log",
        "stop_on_log",
        "SIGTERM checks: send SIGTERM at the first log line matching REGEX instead",
        _regex,
        metavar="REGEX",
    ),
    Option(
        "sm_grace",
        "grace_s",
        "seconds between SIGTERM and SIGKILL (default 120, as SageMaker); lower it to iterate fast",
        _seconds,
        metavar="SECONDS",
    ),
    Option(
        "sm_sigterm_hyperparameter",
        "sigterm_hyperparameters",
        "hyperparameter for the SIGTERM runs only, e.g. to make training last longer (repeatable)",
        _pairs_parser("KEY", "epochs=1000"),
        "list",
        "KEY=VALUE",
    ),
    Option(
        "sm_checkpoints",
        "checkpoints",
        "run SM-CKPT-RESUME and SM-SPOT-RESTART even when the job has no CheckpointConfig (a generated S3 URI)",
        _flag,
        "bool",
    ),
    Option(
        "sm_resume_log",
        "resume_log",
        "SM-CKPT-RESUME, SM-SPOT-RESTART: the resumed run's log must match REGEX",
        _regex,
        metavar="REGEX",
    ),
    Option("sm_no_suite", "no_suite", "do not collect the built-in contract suite (fixtures only)", _flag, "bool"),
    Option(
        "sm_input_modes",
        "input_modes",
        "SM-DATA-MODES: try the channels under each of these input modes (comma-separated: File,FastFile,Pipe)",
        _input_modes,
        metavar="MODES",
    ),
    Option(
        "sm_instance_count",
        "instance_count",
        "SM-HOSTS-MULTI: train on N hosts (default: the job's count when > 1)",
        _whole(1, 20, "hosts"),
        metavar="N",
    ),
    Option(
        "sm_max_hosts",
        "max_hosts",
        "most hosts (containers) one job may have (default: 2 per CPU and 1 per GiB of this machine's memory, "
        "at least 2); a job with more is a usage error",
        _whole(1, 1000, "hosts"),
        metavar="N",
    ),
    Option("sm_allow_network", "allow_network", "the image needs the network: skip SM-NET-ISOLATION", _flag, "bool"),
    Option(
        "sm_needs_s3",
        "needs_s3",
        "the image calls S3 itself (AWS_ENDPOINT_URL_S3): where this engine's containers cannot reach the "
        "session's S3, the checks that run it skip with that reason instead of failing",
        _flag,
        "bool",
    ),
    Option(
        "sm_aws_region",
        ("region", "set_region_env"),
        "region in TRAINING_JOB_ARN and the AWS_REGION the container gets (default us-east-1); 'none' sets no "
        "AWS_REGION (whether SageMaker sets it is uncertain)",
        _region,
        metavar="REGION",
    ),
    Option(
        "sm_hyperparameter_value_limit",
        "hyperparameter_value_limit",
        "characters allowed per hyperparameter value (default 2500, the API model's; the guide's prose says 256)",
        _whole(1, 2500, "characters"),
        metavar="N",
    ),
    Option(
        "sm_gpus",
        "gpus",
        "how containers get the instance's GPUs: auto (NVIDIA runtime/CDI when present), all, none, or devices "
        "(/dev/nvidia* passthrough plus the host driver read-only, for hosts without the container toolkit)",
        _gpus,
        metavar="MODE",
    ),
    Option(
        "sm_parallel",
        "parallel",
        "how many of an image's checks (their training jobs) run at once (default: from the host's CPUs and "
        "memory; 1 runs them one after another)",
        _whole(1, 64, "checks"),
        metavar="N",
    ),
    Option(
        "sm_resources",
        "resources",
        "on (default): each container gets its instance type's vCPUs and memory as limits (capped at the host's); "
        "off: no limits, for hosts that cannot honour them (e.g. rootless Docker without cgroup delegation)",
        _on_off,
        metavar="on|off",
    ),
    Option(
        "sm_data_path",
        "data_path",
        "how /opt/ml reaches containers: auto (default: bind mounts where the engine shares this filesystem and "
        "pytest is root, else the Docker API), bind, or engine (volumes and archives, any engine)",
        _data_path,
        metavar="auto|bind|engine",
    ),
    Option(
        "sm_gpu_probe",
        "gpu_probe",
        "SM-GPU-VISIBLE: also run CMD with sh -c in the container; it must exit 0",
        _command,
        metavar="CMD",
    ),
    Option(
        "sm_reuse",
        "reuse",
        "reuse each built-in check's verdict from pytest's cache (.pytest_cache; --cache-clear empties it) while the "
        "image id, the request, the channels' content, the options and the plugin are unchanged; a change reruns "
        "the image's checks",
        _flag,
        "bool",
    ),
)


@dataclass
class Settings:
    images: list[str] = field(default_factory=list)
    job_file: Path | None = None
    job_request: dict[str, Any] | None = None
    channels: dict[str, Path] = field(default_factory=dict)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    instance_type: str | None = None
    expect_model: list[str] = field(default_factory=list)
    keep: bool = False
    strict: bool = False
    report: Path | None = None
    #: --sm-html: the self-contained HTML report.
    html: Path | None = None
    timeout_s: float = 600.0
    stop_after_s: float = 5.0
    stop_on_log: str | None = None
    grace_s: float = 120.0
    sigterm_hyperparameters: dict[str, str] = field(default_factory=dict)
    checkpoints: bool = False
    resume_log: str | None = None
    no_suite: bool = False
    input_modes: list[str] = field(default_factory=list)
    instance_count: int | None = None
    #: --sm-max-hosts: None: `host_limit` of this machine.
    max_hosts: int | None = None
    allow_network: bool = False
    #: --sm-needs-s3: the image calls S3 itself; checks that run it skip where containers cannot reach S3.
    needs_s3: bool = False
    region: str = "us-east-1"
    set_region_env: bool = True
    hyperparameter_value_limit: int | None = None
    gpus: str = "auto"
    gpu_probe: str | None = None
    #: --sm-resources: limit containers to the instance type's vCPUs and memory.
    resources: bool = True
    #: None: derived from the host (see `concurrency.default_parallel`).
    parallel: int | None = None
    #: --sm-data-path: auto | bind | engine.
    data_path: str = "auto"
    #: --sm-reuse: replay kept verdicts while nothing they depend on changed (reuse.py).
    reuse: bool = False
    #: Each given option's raw value and where it came from (the flag or the ini key), for the report header.
    given: dict[str, tuple[Any, str]] = field(default_factory=dict)

    @property
    def suite(self) -> bool:
        return not self.no_suite

    def header(self, platform_lines: Sequence[str] = ()) -> list[str]:
        """The report header's lines: each given option and its source, then `platform_lines` (what the session
        measured about the engine), then what the --sm-job request sets that is not simulated."""
        if not self.given:
            return ["sagemaker-contract: no --sm-image given (fixtures only)"]
        shown = []
        for name, (value, source) in self.given.items():
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            shown.append(f"{name}={text} ({source})")
        lines = ["sagemaker-contract: " + ", ".join(shown)]
        lines.extend(platform_lines)
        if self.job_request is not None:
            try:
                skipped = parse_request(self.job_request, image="x").not_simulated
            except RequestError:
                skipped = ()
            if skipped:
                lines.append(
                    f"sagemaker-contract: accepted but not simulated from {self.job_file}: {', '.join(skipped)}"
                )
        return lines


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("sagemaker-contract", "SageMaker training contract")
    for opt in OPTIONS:
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.name, help=opt.help)
            parser.addini(opt.name, opt.help + " (ini)", type="bool", default=False)
        elif opt.kind == "list":
            group.addoption(opt.flag, action="append", default=None, dest=opt.name, metavar=opt.metavar, help=opt.help)
            parser.addini(opt.name, opt.help + " (ini, one per line)", type="linelist", default=[])
        else:
            group.addoption(opt.flag, action="store", default=None, dest=opt.name, metavar=opt.metavar, help=opt.help)
            parser.addini(opt.name, opt.help + " (ini)", default=None)


def _raw(config: pytest.Config, opt: Option) -> tuple[Any, str | None]:
    value = config.getoption(opt.name)
    if value not in (None, []):
        return value, opt.flag
    ini = config.getini(opt.name)
    if ini not in (None, [], "", False):
        return ini, f"ini {opt.name}"
    return None, None


def resolve(config: pytest.Config) -> Settings:
    """Read and check every option; a bad value is one clear usage error."""
    settings = Settings()
    for opt in OPTIONS:
        value, source = _raw(config, opt)
        if value is None or source is None:
            continue
        parsed = opt.parse(opt, value)
        if isinstance(opt.attr, tuple):
            for attr, part in zip(opt.attr, parsed, strict=True):
                setattr(settings, attr, part)
        else:
            setattr(settings, opt.attr, parsed)
        settings.given[opt.name] = (value, source)
    _check_report_is_no_input(settings)
    _check_host_count(settings)
    _check_effective_request(settings)
    _check_file_system_channels(settings)
    _image_from_job(settings)
    return settings


def _check_file_system_channels(settings: Settings) -> None:
    """A FileSystemDataSource channel (EFS, FSx) is out of reach here: the user names the local directory that
    stands in for it, or every run would fail the same way."""
    for channel in (settings.job_request or {}).get("InputDataConfig") or ():
        fs = (channel.get("DataSource") or {}).get("FileSystemDataSource")
        name = channel.get("ChannelName")
        if fs is None:
            continue
        where = f"{fs.get('FileSystemType')} {fs.get('FileSystemId')}:{fs.get('DirectoryPath')}"
        local = settings.channels.get(name)
        if local is None or not local.is_dir():
            seen = "no --sm-channel gives it a local directory" if local is None else f"{local} is not a directory"
            raise pytest.UsageError(
                f"--sm-job {settings.job_file}: channel {name!r} reads FileSystemDataSource {where}, which the local "
                f"platform cannot reach, and {seen}: add --sm-channel {name}=DIR (the directory mounted in its place)"
            )


def _check_report_is_no_input(settings: Settings) -> None:
    """The report is written at the end of the run: over the job file or into a channel it would destroy or
    change the user's input."""
    for flag, report in (("--sm-report", settings.report), ("--sm-html", settings.html)):
        if report is not None:
            _check_output_is_no_input(settings, flag, report)


def _check_output_is_no_input(settings: Settings, flag: str, report: Path) -> None:
    if settings.job_file is not None and _same_file(report, settings.job_file):
        raise pytest.UsageError(
            f"{flag} {report}: is the --sm-job request file; the report would overwrite it: name another file"
        )
    for name, path in settings.channels.items():
        if path.is_dir() and _inside(report, path):
            raise pytest.UsageError(
                f"{flag} {report}: is inside channel {name!r} ({path}); the report would become training data: "
                "write it outside the channel"
            )
        if _same_file(report, path):
            raise pytest.UsageError(
                f"{flag} {report}: is channel {name!r}'s file; the report would overwrite it: name another file"
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except (OSError, RuntimeError):
        return False


def _inside(path: Path, directory: Path) -> bool:
    try:
        return path.resolve().is_relative_to(directory.resolve())
    except (OSError, RuntimeError):
        return False


def host_bound(settings: Settings) -> tuple[int, str]:
    """The most hosts one job may have here, and where that number comes from (for the message)."""
    if settings.max_hosts:
        return settings.max_hosts, f"--sm-max-hosts {settings.max_hosts}"
    cpus, memory = local_capacity()
    limit = host_limit(cpus, memory)
    shown = f"{cpus} CPUs, {memory / 2**30:.0f} GiB" if cpus and memory else "its CPUs and memory"
    return limit, f"this machine ({shown}) runs at most {limit}, 2 per CPU and 1 per GiB"


def too_many_hosts(what: str, source: str) -> str:
    """One line for a job of more hosts than `host_bound` allows."""
    return (
        f"{what} hosts: more than one job may start here ({source}); lower the count, "
        "or raise the bound with --sm-max-hosts N on a machine that can run them"
    )


def _check_host_count(settings: Settings) -> None:
    """A job of more hosts than this machine can run starts containers that starve each other: refuse it first."""
    limit, source = host_bound(settings)
    counts: list[tuple[int, str]] = []
    if settings.instance_count is not None:
        counts.append((settings.instance_count, f"--sm-instance-count {settings.instance_count}"))
    if settings.job_request is not None:
        resource = settings.job_request.get("ResourceConfig") or {}
        groups = resource.get("InstanceGroups") or []
        if groups:
            total = sum(int(g.get("InstanceCount", 0)) for g in groups)
            counts.append((total, f"--sm-job {settings.job_file}: ResourceConfig.InstanceGroups add up to {total}"))
        else:
            count = int(resource.get("InstanceCount", 1))
            counts.append((count, f"--sm-job {settings.job_file}: ResourceConfig.InstanceCount {count}"))
    for count, what in counts:
        if count > limit:
            raise pytest.UsageError(too_many_hosts(what, source))


def _check_effective_request(settings: Settings) -> None:
    """The request the suite's runs send (--sm-job plus the options), checked once here: one usage error instead
    of the same failure in every check."""
    flags = [
        opt.flag
        for opt in OPTIONS
        if opt.name in settings.given
        and opt.name in ("sm_hyperparameter", "sm_sigterm_hyperparameter", "sm_env", "sm_instance_type", "sm_channel")
    ]
    if not flags and settings.hyperparameter_value_limit is None:
        return
    hyperparameters = {**settings.hyperparameters, **settings.sigterm_hyperparameters}
    request = with_overrides(
        settings.job_request,
        name="sm-contract-options",
        image="x",
        channel_uris={name: local_channel_uri("x", name) for name in settings.channels},
        hyperparameters=hyperparameters,
        environment=settings.environment,
    )
    try:
        parse_request(request, image="x", hyperparameter_value_limit=settings.hyperparameter_value_limit)
    except RequestError as exc:
        given = " and ".join(flags + (["--sm-job"] if settings.job_request is not None else []))
        raise pytest.UsageError(f"{given or '--sm-hyperparameter-value-limit'}: {exc}") from None


def _image_from_job(settings: Settings) -> None:
    """`--sm-job` alone checks the job's own TrainingImage, as the user who wrote the job expects."""
    if settings.images or settings.job_request is None:
        return
    image = (settings.job_request.get("AlgorithmSpecification") or {}).get("TrainingImage")
    if isinstance(image, str) and image.strip():
        settings.images = [image.strip()]
        source = f"AlgorithmSpecification.TrainingImage of {settings.job_file}"
        settings.given = {"sm_image": (image.strip(), source), **settings.given}
