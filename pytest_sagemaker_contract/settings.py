"""The plugin's options: command line first, then the ini file; each value remembers where it came from."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .spec import RequestError, load_request, validate_request

__all__ = ["OPTIONS", "Option", "Settings", "add_options", "resolve"]


@dataclass(frozen=True)
class Option:
    name: str  # the ini key; the flag is --sm-<name with dashes>
    help: str
    kind: str = "string"  # string | list | bool | float
    metavar: str | None = None
    default: Any = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("sm_image", "training image to check (repeatable: one contract suite per image)", "list", "IMAGE"),
    Option(
        "sm_job",
        "CreateTrainingJob request JSON (as for --cli-input-json) the runs start from",
        metavar="FILE",
    ),
    Option("sm_channel", "stage a local file or directory as channel NAME (repeatable)", "list", "NAME=PATH"),
    Option("sm_hyperparameter", "set a hyperparameter for every run (repeatable)", "list", "KEY=VALUE"),
    Option("sm_env", "set a container Environment entry for every run (repeatable)", "list", "KEY=VALUE"),
    Option(
        "sm_instance_type",
        "ResourceConfig.InstanceType for the runs (default: the job's, or ml.m5.large)",
        metavar="TYPE",
    ),
    Option(
        "sm_expect_model",
        "glob the model.tar.gz must hold a file for (repeatable; default: any file)",
        "list",
        "GLOB",
    ),
    Option("sm_keep", "keep containers, networks and job directories for debugging, and print where", "bool"),
    Option("sm_report", "write the machine-readable contract report (JSON) to FILE", metavar="FILE"),
    Option(
        "sm_timeout",
        "seconds one training run may take before the check fails (default 600)",
        "float",
        "SECONDS",
        600.0,
    ),
    Option(
        "sm_stop_after",
        "SIGTERM checks: send SIGTERM this many seconds after the container starts (default 5)",
        "float",
        "SECONDS",
        5.0,
    ),
    Option(
        "sm_stop_on_log", "SIGTERM checks: send SIGTERM at the first log line matching REGEX instead", metavar="REGEX"
    ),
    Option(
        "sm_grace",
        "seconds between SIGTERM and SIGKILL (default 120, as SageMaker); lower it to iterate fast",
        "float",
        "SECONDS",
        120.0,
    ),
    Option(
        "sm_sigterm_hyperparameter",
        "hyperparameter for the SIGTERM runs only, e.g. to make training last longer (repeatable)",
        "list",
        "KEY=VALUE",
    ),
    Option(
        "sm_checkpoints", "run SM-CKPT-RESUME even when the job has no CheckpointConfig (a generated S3 URI)", "bool"
    ),
    Option("sm_resume_log", "SM-CKPT-RESUME: the resumed run's log must match REGEX", metavar="REGEX"),
    Option("sm_no_suite", "do not collect the built-in contract suite (fixtures only)", "bool"),
    Option(
        "sm_input_modes",
        "SM-DATA-MODES: try the channels under each of these input modes (comma-separated: File,FastFile,Pipe)",
        metavar="MODES",
    ),
    Option("sm_instance_count", "SM-HOSTS-MULTI: train on N hosts (default: the job's count when > 1)", metavar="N"),
    Option("sm_allow_network", "the image needs the network: skip SM-NET-ISOLATION", "bool"),
    Option(
        "sm_aws_region",
        "region in TRAINING_JOB_ARN and the AWS_REGION the container gets (default us-east-1); 'none' sets no "
        "AWS_REGION (whether SageMaker sets it is uncertain)",
        metavar="REGION",
    ),
    Option(
        "sm_hyperparameter_value_limit",
        "characters allowed per hyperparameter value (default 2500, the API model's; the guide's prose says 256)",
        metavar="N",
    ),
    Option(
        "sm_gpus",
        "how containers get the instance's GPUs: auto (NVIDIA runtime/CDI when present), all, none, or devices "
        "(/dev/nvidia* passthrough plus the host driver read-only, for hosts without the container toolkit)",
        metavar="MODE",
        default="auto",
    ),
    Option("sm_gpu_probe", "SM-GPU-VISIBLE: also run CMD with sh -c in the container; it must exit 0", metavar="CMD"),
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
    report: Path | None = None
    timeout_s: float = 600.0
    stop_after_s: float = 5.0
    stop_on_log: str | None = None
    grace_s: float = 120.0
    sigterm_hyperparameters: dict[str, str] = field(default_factory=dict)
    checkpoints: bool = False
    resume_log: str | None = None
    suite: bool = True
    input_modes: list[str] = field(default_factory=list)
    instance_count: int | None = None
    allow_network: bool = False
    region: str = "us-east-1"
    set_region_env: bool = True
    hyperparameter_value_limit: int | None = None
    gpus: str = "auto"
    gpu_probe: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def header(self) -> list[str]:
        if not self.sources:
            return ["sagemaker-contract: no --sm-image given (fixtures only)"]
        shown = []
        for name, source in self.sources.items():
            value = getattr(self, _ATTR[name])
            if name == "sm_no_suite":
                value = not value
            if isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ",".join(value)
            shown.append(f"{name}={value} ({source})")
        lines = ["sagemaker-contract: " + ", ".join(shown)]
        if self.job_request is not None:
            from .spec import RequestError, parse_request

            try:
                skipped = parse_request(self.job_request, image="x").not_simulated
            except RequestError:
                skipped = ()
            if skipped:
                lines.append(
                    f"sagemaker-contract: accepted but not simulated from {self.job_file}: {', '.join(skipped)}"
                )
        return lines


_ATTR = {
    "sm_image": "images",
    "sm_job": "job_file",
    "sm_channel": "channels",
    "sm_hyperparameter": "hyperparameters",
    "sm_env": "environment",
    "sm_instance_type": "instance_type",
    "sm_expect_model": "expect_model",
    "sm_keep": "keep",
    "sm_report": "report",
    "sm_timeout": "timeout_s",
    "sm_no_suite": "suite",
    "sm_stop_after": "stop_after_s",
    "sm_stop_on_log": "stop_on_log",
    "sm_grace": "grace_s",
    "sm_sigterm_hyperparameter": "sigterm_hyperparameters",
    "sm_checkpoints": "checkpoints",
    "sm_resume_log": "resume_log",
    "sm_input_modes": "input_modes",
    "sm_instance_count": "instance_count",
    "sm_allow_network": "allow_network",
    "sm_aws_region": "region",
    "sm_hyperparameter_value_limit": "hyperparameter_value_limit",
    "sm_gpus": "gpus",
    "sm_gpu_probe": "gpu_probe",
}


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


def _pairs(values: Sequence[str], flag: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"{flag} {item!r}: expected {what}=VALUE, e.g. {flag} epochs=3")
        out[key] = value
    return out


def _seconds(flag: str, value: Any) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise pytest.UsageError(f"{flag} {value!r}: expected a number of seconds") from None
    if seconds <= 0:
        raise pytest.UsageError(f"{flag} {value}: must be a positive number of seconds")
    return seconds


def resolve(config: pytest.Config) -> Settings:
    """Read and check every option; a bad value is one clear usage error."""
    s = Settings()
    by_name = {o.name: o for o in OPTIONS}
    for opt in OPTIONS:
        value, source = _raw(config, opt)
        if value is None:
            continue
        if opt.name == "sm_no_suite":
            s.suite = not bool(value)
        elif opt.name == "sm_image":
            s.images = list(dict.fromkeys(v.strip() for v in value if v.strip()))
            if not s.images:
                raise pytest.UsageError("--sm-image: empty image name; pass a local tag like myrepo/algo:latest")
        elif opt.name == "sm_job":
            s.job_file = Path(value)
            try:
                s.job_request = load_request(s.job_file)
            except RequestError as exc:
                raise pytest.UsageError(f"--sm-job: {exc}") from None
            problems = [p for p in validate_request(s.job_request) if "TrainingImage" not in p]
            if problems:
                raise pytest.UsageError(f"--sm-job {value}: invalid CreateTrainingJob request: {problems[0]}")
        elif opt.name == "sm_channel":
            for name, path in _pairs(value, opt.flag, "NAME").items():
                if not re.fullmatch(r"[A-Za-z0-9.\-_]{1,64}", name):
                    raise pytest.UsageError(
                        f"--sm-channel {name}=...: channel names are 1-64 characters of [A-Za-z0-9.-_]"
                    )
                p = Path(path).expanduser()
                if not p.exists():
                    raise pytest.UsageError(f"--sm-channel {name}={path}: {path} does not exist")
                s.channels[name] = p
        elif opt.name == "sm_hyperparameter":
            s.hyperparameters = _pairs(value, opt.flag, "KEY")
        elif opt.name == "sm_env":
            s.environment = _pairs(value, opt.flag, "KEY")
            bad = [k for k in s.environment if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k)]
            if bad:
                raise pytest.UsageError(f"--sm-env {bad[0]}=...: Environment keys must match [a-zA-Z_][a-zA-Z0-9_]*")
        elif opt.name == "sm_instance_type":
            s.instance_type = str(value)
            from .spec import _request_shape

            enum = _request_shape().members["ResourceConfig"].members["InstanceType"].enum
            if s.instance_type not in enum:
                close = fnmatch.filter(enum, s.instance_type.split(".")[0] + "." + "*")[:5]
                hint = f" (e.g. {', '.join(close)})" if close else " (e.g. ml.m5.large)"
                raise pytest.UsageError(f"--sm-instance-type {value}: not a SageMaker training instance type{hint}")
        elif opt.name == "sm_expect_model":
            s.expect_model = list(value)
        elif opt.name == "sm_keep":
            s.keep = bool(value)
        elif opt.name == "sm_report":
            s.report = Path(value)
        elif opt.name in ("sm_timeout", "sm_stop_after", "sm_grace"):
            setattr(s, _ATTR[opt.name], _seconds(opt.flag, value))
        elif opt.name in ("sm_stop_on_log", "sm_resume_log"):
            try:
                re.compile(value)
            except re.error as exc:
                raise pytest.UsageError(f"{opt.flag} {value!r}: not a valid regular expression ({exc})") from None
            setattr(s, _ATTR[opt.name], str(value))
        elif opt.name == "sm_sigterm_hyperparameter":
            s.sigterm_hyperparameters = _pairs(value, opt.flag, "KEY")
        elif opt.name == "sm_checkpoints":
            s.checkpoints = bool(value)
        elif opt.name == "sm_input_modes":
            modes = [m.strip() for m in str(value).split(",") if m.strip()]
            bad = [m for m in modes if m not in ("File", "FastFile", "Pipe")]
            if bad or not modes:
                raise pytest.UsageError(
                    f"--sm-input-modes {value}: expected a comma-separated subset of File,FastFile,Pipe"
                )
            s.input_modes = list(dict.fromkeys(modes))
        elif opt.name == "sm_instance_count":
            try:
                s.instance_count = int(value)
            except ValueError:
                raise pytest.UsageError(f"--sm-instance-count {value!r}: expected a whole number of hosts") from None
            if not 1 <= s.instance_count <= 20:
                raise pytest.UsageError(f"--sm-instance-count {value}: between 1 and 20 hosts here")
        elif opt.name == "sm_allow_network":
            s.allow_network = bool(value)
        elif opt.name == "sm_aws_region":
            text = str(value).strip()
            if text.lower() == "none":
                s.set_region_env = False
            elif re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", text):
                s.region = text
            else:
                raise pytest.UsageError(f"--sm-aws-region {value!r}: expected a region like us-east-1, or none")
        elif opt.name == "sm_hyperparameter_value_limit":
            try:
                s.hyperparameter_value_limit = int(value)
            except ValueError:
                raise pytest.UsageError(f"--sm-hyperparameter-value-limit {value!r}: expected a number") from None
            if not 1 <= s.hyperparameter_value_limit <= 2500:
                raise pytest.UsageError(f"--sm-hyperparameter-value-limit {value}: between 1 and 2500")
        elif opt.name == "sm_gpus":
            from .platform.gpu import GPU_MODES

            s.gpus = str(value).strip().lower()
            if s.gpus not in GPU_MODES:
                raise pytest.UsageError(f"--sm-gpus {value}: expected one of {', '.join(GPU_MODES)}")
        elif opt.name == "sm_gpu_probe":
            if not str(value).strip():
                raise pytest.UsageError(
                    "--sm-gpu-probe: empty command; e.g. --sm-gpu-probe 'python -c \"import torch\"'"
                )
            s.gpu_probe = str(value)
        if source is not None and opt.name in by_name:
            s.sources[opt.name] = source
    return s
