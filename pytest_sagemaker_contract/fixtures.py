"""User-facing fixtures: the platform, its S3, the image under test, and the `training_job` factory."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .jobs import job_name, local_channel_uri, with_overrides
from .platform import Engine, EngineError, S3Server, TrainingJob, TrainingJobResult, TrainingPlatform
from .settings import Settings
from .spec import RequestError, TrainingJobSpec, parse_request

__all__ = [
    "JobRequest",
    "SageMakerSession",
    "TrainingJobFactory",
    "sagemaker_platform",
    "sagemaker_s3",
    "sm_image",
    "training_job",
]

SESSION_KEY = pytest.StashKey["SageMakerSession"]()


class SageMakerSession:
    """Everything one pytest process (or xdist worker) shares: settings, and a platform started on first use."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        base = os.environ.get("SM_CONTRACT_RUN_ID") or os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8]
        self.run_id = "-".join(p for p in (base, worker) if p) or os.urandom(4).hex()
        self._platform: TrainingPlatform | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.kept: list[Path] = []

    def platform(self) -> TrainingPlatform:
        with self._lock:
            if self._error is not None:
                pytest.fail(self._error, pytrace=False)
            if self._platform is None:
                try:
                    engine = Engine()
                except EngineError as exc:
                    self._error = f"sagemaker-contract: {exc}"
                    pytest.fail(self._error, pytrace=False)
                gateway = engine.bridge_gateway()
                s3 = S3Server(host=gateway or "127.0.0.1").start()
                workdir = Path(tempfile.mkdtemp(prefix=f"sm-contract-{self.run_id}-"))
                self._platform = TrainingPlatform(
                    engine,
                    s3,
                    workdir,
                    run_id=self.run_id,
                    keep=self.settings.keep,
                    grace_s=self.settings.grace_s,
                    default_network=None if gateway else "none",
                    container_s3_endpoint=s3.endpoint_url if gateway else None,
                    gpus=self.settings.gpus,
                    region=self.settings.region,
                    set_region_env=self.settings.set_region_env,
                )
            return self._platform

    @property
    def started(self) -> bool:
        return self._platform is not None

    def channel_uri(self, name: str, base: Mapping[str, Any] | None) -> str:
        """The S3 URI a local channel stands in for: the job's own for that channel, or a generated one.

        Nothing is uploaded here: the platform stages the local data without a copy where the channel's
        semantics allow, and uploads it to this URI where the S3 path itself matters.
        """
        for channel in (base or {}).get("InputDataConfig", []):
            if channel.get("ChannelName") == name:
                uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
                if uri:
                    return str(uri)
        return local_channel_uri(self.platform().run_id, name)

    def close(self) -> None:
        if self._platform is None:
            return
        platform, self._platform = self._platform, None
        platform.close()
        platform.s3.stop()
        if self.settings.keep:
            self.kept.append(platform.workdir)
        else:
            shutil.rmtree(platform.workdir, ignore_errors=True)


def _session(config: pytest.Config) -> SageMakerSession:
    return config.stash[SESSION_KEY]


class JobRequest:
    """One training job, built but not started: `.run()` for the result, `.start()` for a live job."""

    def __init__(
        self,
        session: SageMakerSession,
        request: dict[str, Any],
        timeout_s: float,
        local_channels: Mapping[str, Path] | None = None,
        gpus: str | None = None,
    ) -> None:
        self._session = session
        self.gpus = gpus
        self.request = request
        self.timeout_s = timeout_s
        self.local_channels = dict(local_channels or {})

    @property
    def spec(self) -> TrainingJobSpec:
        try:
            return parse_request(
                self.request, hyperparameter_value_limit=self._session.settings.hyperparameter_value_limit
            )
        except RequestError as exc:
            pytest.fail(str(exc), pytrace=False)

    def start(self) -> TrainingJob:
        """CreateTrainingJob: the job is running when this returns (use it as a context manager)."""
        return self._session.platform().start(self.spec, self.local_channels, self.gpus)

    def run(self, timeout: float | None = None) -> TrainingJobResult:
        """Run to the end and return what DescribeTrainingJob would say (plus logs and files)."""
        job = self.start()
        limit = timeout if timeout is not None else self.timeout_s
        try:
            return job.wait(limit)
        except TimeoutError:
            job.stop(grace=5)
            job.wait()
            pytest.fail(
                f"training job {job.spec.name} did not finish within {limit:.0f} s (--sm-timeout); "
                f"log tail:\n{_tail(job.logs())}",
                pytrace=False,
            )


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


class TrainingJobFactory:
    """`training_job(image=None, **overrides)` → a JobRequest.

    Overrides are in SageMaker's own terms; unset ones come from `@pytest.mark.sagemaker_job(...)`,
    then from the `--sm-*` options and the `--sm-job` request file.
    """

    def __init__(self, session: SageMakerSession, request: pytest.FixtureRequest, defaults: Mapping[str, Any]) -> None:
        self._session = session
        self._request = request
        self._defaults = dict(defaults)

    def __call__(
        self,
        image: str | None = None,
        *,
        job: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        name: str | None = None,
        hyperparameters: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        channels: Mapping[str, str | os.PathLike[str]] | None = None,
        instance_type: str | None = None,
        instance_count: int | None = None,
        entrypoint: Sequence[str] | None = None,
        arguments: Sequence[str] | None = None,
        keep_invocation: bool = True,
        max_runtime: int | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        network_isolation: bool | None = None,
        input_mode: str | None = None,
        gpus: str | None = None,
        timeout: float | None = None,
    ) -> JobRequest:
        given = {k: v for k, v in locals().items() if k not in ("self", "image") and v is not None}
        opts = {**self._defaults, **given}
        settings = self._session.settings
        image = image or self._defaults.get("image") or self._request.getfixturevalue("sm_image")
        base: Mapping[str, Any] | None
        job_arg = opts.get("job")
        if isinstance(job_arg, Mapping):
            base = job_arg
        elif job_arg is not None:
            from .spec import load_request

            base = load_request(Path(job_arg))
        else:
            base = settings.job_request
        channel_paths: dict[str, str | os.PathLike[str]] = {
            **settings.channels,
            **dict(opts.get("channels") or {}),
        }
        channel_uris = {}
        local_channels: dict[str, Path] = {}
        for cname, where in channel_paths.items():
            text = os.fspath(where)
            if text.startswith("s3://"):
                channel_uris[cname] = text
                continue
            local_channels[cname] = Path(text).expanduser().resolve()
            channel_uris[cname] = self._session.channel_uri(cname, base)
        prefix = opts.get("name") or (base or {}).get("TrainingJobName") or "sm-contract"
        request = with_overrides(
            base,
            name=job_name(str(prefix)),
            image=str(image),
            hyperparameters={**settings.hyperparameters, **dict(opts.get("hyperparameters") or {})},
            environment={**settings.environment, **dict(opts.get("environment") or {})},
            channel_uris=channel_uris,
            instance_type=opts.get("instance_type") or settings.instance_type,
            instance_count=opts.get("instance_count"),
            entrypoint=opts.get("entrypoint"),
            arguments=opts.get("arguments"),
            keep_invocation=bool(opts.get("keep_invocation", True)),
            max_runtime_s=opts.get("max_runtime"),
            checkpoint_s3_uri=opts.get("checkpoint_s3_uri"),
            checkpoint_local_path=opts.get("checkpoint_local_path"),
            network_isolation=opts.get("network_isolation"),
            input_mode=opts.get("input_mode"),
        )
        return JobRequest(
            self._session, request, float(opts.get("timeout") or settings.timeout_s), local_channels, opts.get("gpus")
        )


#: Keywords `@pytest.mark.sagemaker_job(...)` accepts: the factory's own.
JOB_MARKER_KEYWORDS = tuple(p for p in inspect.signature(TrainingJobFactory.__call__).parameters if p != "self")


def marker_defaults(node: pytest.Item) -> dict[str, Any]:
    """Merge `sagemaker_job` markers, closest (function) last so it wins; unknown keywords are errors."""
    merged: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers("sagemaker_job"))):
        if mark.args:
            if len(mark.args) > 1 or "image" in mark.kwargs:
                raise pytest.UsageError(f"{node.nodeid}: @pytest.mark.sagemaker_job takes one positional image")
            merged["image"] = mark.args[0]
        unknown = sorted(set(mark.kwargs) - set(JOB_MARKER_KEYWORDS))
        if unknown:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.sagemaker_job got unknown keyword {unknown[0]!r}; "
                f"valid: {', '.join(JOB_MARKER_KEYWORDS)}"
            )
        merged.update(mark.kwargs)
    return merged


@pytest.fixture(scope="session")
def sagemaker_platform(pytestconfig: pytest.Config) -> TrainingPlatform:
    """The local SageMaker training platform (Docker engine + moto S3) of this session or xdist worker."""
    return _session(pytestconfig).platform()


@pytest.fixture(scope="session")
def sagemaker_s3(sagemaker_platform: TrainingPlatform) -> Any:
    """A boto3 S3 client bound to the platform's moto server: seed channels, inspect artifacts."""
    return sagemaker_platform.s3.client()


@pytest.fixture
def sm_image(request: pytest.FixtureRequest) -> str:
    """The image under test: the contract suite's own image, else the first `--sm-image` / `sm_image`."""
    from .contract import ContractModule

    suite = request.node.getparent(ContractModule)
    if suite is not None:
        return str(suite.image)
    images = _session(request.config).settings.images
    if not images:
        pytest.skip("no image under test: pass --sm-image IMAGE (or set sm_image in the ini file)")
    return images[0]


@pytest.fixture
def training_job(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> TrainingJobFactory:
    """Factory for training jobs on the local platform: `training_job(**overrides).run()`."""
    return TrainingJobFactory(_session(pytestconfig), request, marker_defaults(request.node))
