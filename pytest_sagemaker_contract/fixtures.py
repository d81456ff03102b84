"""User-facing fixtures: the platform, its S3, the image under test, and the `training_job` factory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .api import ApiServer
from .jobs import OVERRIDE_KEYWORDS, RequestOverrides, job_name, with_overrides
from .platform import TrainingJob, TrainingJobResult, TrainingPlatform
from .report_timeline import record_job
from .session import ContractSession, session_of, suite_image
from .settings import host_bound, too_many_hosts
from .spec import RequestError, TrainingJobSpec, load_request, parse_request

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .jobs import JobOverrides

__all__ = [
    "JOB_MARKER_KEYWORDS",
    "JobRequest",
    "TrainingJobFactory",
    "marker_defaults",
    "sagemaker_api",
    "sagemaker_platform",
    "sagemaker_s3",
    "sm_image",
    "training_job",
]

#: Keywords `@pytest.mark.sagemaker_job(...)` accepts: the image, then the factory's overrides.
JOB_MARKER_KEYWORDS: tuple[str, ...] = ("image", *OVERRIDE_KEYWORDS)
_REQUEST_KEYWORDS = frozenset(RequestOverrides.__annotations__)


class JobRequest:
    """One training job, built but not started: `.run()` for the result, `.start()` for a live job."""

    def __init__(
        self,
        session: ContractSession,
        request: dict[str, Any],
        timeout_s: float,
        local_channels: Mapping[str, Path] | None = None,
        gpus: str | None = None,
        node: pytest.Item | None = None,
    ) -> None:
        self._session = session
        self._node = node
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
        spec = self.spec
        limit, source = host_bound(self._session.settings)
        if spec.instance_count > limit:
            pytest.fail(too_many_hosts(f"training job {spec.name}: {spec.instance_count}", source), pytrace=False)
        job = self._session.platform().start(spec, self.local_channels, self.gpus)
        if self._node is not None:
            record_job(self._node, job)  # the test's report shows this job's timeline
        return job

    def run(self, timeout: float | None = None) -> TrainingJobResult:
        """Run to the end and return what DescribeTrainingJob would say (plus logs and files)."""
        job = self.start()
        limit = timeout if timeout is not None else self.timeout_s
        if job.ended(limit):
            return job.wait()
        job.stop(grace=5)
        job.wait()
        pytest.fail(
            f"training job {job.spec.name} did not finish within --sm-timeout {limit:g} s "
            f"(raise --sm-timeout, or shorten training for the suite); log tail:\n{_tail(job.logs())}",
            pytrace=False,
        )


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


class TrainingJobFactory:
    """`training_job(image=None, **overrides)` → a JobRequest.

    Overrides are in SageMaker's own terms; unset ones come from `@pytest.mark.sagemaker_job(...)`,
    then from the `--sm-*` options and the `--sm-job` request file.
    """

    def __init__(
        self,
        session: ContractSession,
        request: pytest.FixtureRequest | None,
        defaults: Mapping[str, Any],
        node: pytest.Item | None = None,
    ) -> None:
        self._session = session
        self._request = request
        self._defaults = dict(defaults)
        #: The test whose report shows the jobs started here (the requesting test unless given).
        self._node = node if node is not None else _test_of(request)

    def __call__(self, image: str | None = None, **overrides: Unpack[JobOverrides]) -> JobRequest:
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYWORDS))
        if unknown:
            raise TypeError(
                f"training_job() got an unexpected keyword {unknown[0]!r}; valid: {', '.join(OVERRIDE_KEYWORDS)}"
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        opts: dict[str, Any] = {**self._defaults, **given}
        settings = self._session.settings
        image = image or self._defaults.get("image")
        if not image:
            if self._request is None:
                raise TypeError("training_job(): no image given and no test to take sm_image from")
            image = self._request.getfixturevalue("sm_image")
        base: Mapping[str, Any] | None
        job_arg = opts.get("job")
        if isinstance(job_arg, Mapping):
            base = job_arg
        elif job_arg is not None:
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
        request_overrides: RequestOverrides = {k: v for k, v in opts.items() if k in _REQUEST_KEYWORDS}  # type: ignore[assignment]
        request_overrides["hyperparameters"] = {**settings.hyperparameters, **dict(opts.get("hyperparameters") or {})}
        request_overrides["environment"] = {**settings.environment, **dict(opts.get("environment") or {})}
        instance_type = opts.get("instance_type") or settings.instance_type
        if instance_type:
            request_overrides["instance_type"] = instance_type
        request = with_overrides(
            base, name=job_name(str(prefix)), image=str(image), channel_uris=channel_uris, **request_overrides
        )
        return JobRequest(
            self._session,
            request,
            float(opts.get("timeout") or settings.timeout_s),
            local_channels,
            opts.get("gpus"),
            self._node,
        )

    def run_all(self, requests: Iterable[JobRequest], parallel: int | None = None) -> list[TrainingJobResult]:
        """Run several jobs at once (at most `parallel`, default --sm-parallel) and return their results in order.

        Each job still gets its own timeout; the first job that fails this test's way (a timeout, a bad
        request) fails the test after the others have ended, so none is left running.
        """
        jobs = list(requests)
        limit = parallel or self._session.parallel
        with ThreadPoolExecutor(max_workers=max(1, min(limit, len(jobs) or 1)), thread_name_prefix="sm-run") as pool:
            futures = [pool.submit(job.run) for job in jobs]
            wait(futures)
        return [future.result() for future in futures]


def _test_of(request: pytest.FixtureRequest | None) -> pytest.Item | None:
    node = request.node if request is not None else None
    return node if isinstance(node, pytest.Item) else None


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
    return session_of(pytestconfig).platform()


@pytest.fixture(scope="session")
def sagemaker_s3(sagemaker_platform: TrainingPlatform) -> Any:
    """A boto3 S3 client bound to the platform's moto server: seed channels, inspect artifacts."""
    return sagemaker_platform.s3.client()


@pytest.fixture(scope="session")
def sagemaker_api(sagemaker_platform: TrainingPlatform) -> Iterator[ApiServer]:
    """The SageMaker training API (with S3, CloudWatch Logs and STS) served over the session's platform, for
    your own boto3 / AWS CLI / SageMaker SDK code: `.endpoints`, `.env()` for a subprocess, `.client(name)`,
    and `.result(job_name)` for the platform's full result of a job your code created."""
    with ApiServer(sagemaker_platform) as api:
        yield api


@pytest.fixture
def sm_image(request: pytest.FixtureRequest) -> str:
    """The image under test: the contract suite's own image, else the first `--sm-image` / `sm_image`."""
    image = suite_image(request.node)
    if image is not None:
        return image
    images = session_of(request.config).settings.images
    if not images:
        pytest.skip("no image under test: pass --sm-image IMAGE (or set sm_image in the ini file)")
    return images[0]


@pytest.fixture
def training_job(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> TrainingJobFactory:
    """Factory for training jobs on the local platform: `training_job(**overrides).run()`."""
    return TrainingJobFactory(session_of(pytestconfig), request, marker_defaults(request.node))
