"""The SageMaker training API over the local platform: CreateTrainingJob, DescribeTrainingJob,
StopTrainingJob and ListTrainingJobs, with AWS's validation and error shapes.

CreateTrainingJob answers at once, as SageMaker does; the platform starts the job in the background
(staging, containers) and DescribeTrainingJob follows it: Starting, Downloading, Training, Stopping,
Uploading, then Completed, Failed or Stopped, with the transitions' times taken from the job's timeline.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..platform import TrainingJob, TrainingJobResult, TrainingPlatform
from ..platform.layout import training_job_arn
from ..platform.metrics import match_metrics, metric_definitions
from ..spec import RequestError, TrainingJobSpec, parse_request, validate_input
from .cloudwatch import CloudWatchLogs, JobLog
from .errors import ApiError, not_found, validation

__all__ = ["TrainingJobs", "warm_up"]

_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Stopping": "Stopping the training job",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Stopped": "Training job stopped",
    "Failed": "Training job failed",
    "MaxRuntimeExceeded": "Job stopped because it exceeded MaxRuntimeInSeconds",
}


@dataclass
class _Record:
    request: dict[str, Any]
    spec: TrainingJobSpec
    arn: str
    created: float
    job: TrainingJob | None = None
    result: TrainingJobResult | None = None
    #: Why the platform could not start the job (a FailureReason).
    start_error: str | None = None
    stop_requested: float | None = None
    modified: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    model_exists: bool = False
    log: JobLog | None = None
    ended: threading.Event = field(default_factory=threading.Event)


class TrainingJobs:
    """Every training job this server created, by name, and the operations on them."""

    def __init__(
        self,
        platform: TrainingPlatform,
        logs: CloudWatchLogs,
        *,
        max_hosts: int | None = None,
        on_start: Callable[[TrainingJob], None] | None = None,
    ) -> None:
        self.platform = platform
        self.logs = logs
        self.max_hosts = max_hosts
        self._on_start = on_start
        self._jobs: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        handler = {
            "CreateTrainingJob": self.create,
            "DescribeTrainingJob": self.describe,
            "StopTrainingJob": self.stop,
            "ListTrainingJobs": self.list_jobs,
        }.get(operation)
        if handler is None:
            raise ApiError(
                "UnknownOperationException",
                f"sm-contract serves SageMaker CreateTrainingJob, DescribeTrainingJob, StopTrainingJob and "
                f"ListTrainingJobs, not {operation} (endpoints, processing and transform jobs are not simulated)",
            )
        if operation != "CreateTrainingJob":
            errors = validate_input("sagemaker", operation, params)
            if errors:
                raise validation(_joined(errors))
        return handler(params)

    # -- operations -----------------------------------------------------------------------------

    def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            spec = parse_request(params)
        except RequestError as exc:
            raise validation(str(exc)) from None
        if self.max_hosts is not None and spec.instance_count > self.max_hosts:
            raise ApiError(
                "ResourceLimitExceeded",
                f"ResourceConfig asks for {spec.instance_count} instances; this machine runs at most "
                f"{self.max_hosts} hosts per job (raise --max-hosts, or lower InstanceCount)",
            )
        arn = training_job_arn(spec, self.platform.region)
        now = time.time()
        record = _Record(dict(params), spec, arn, now, modified=now)
        with self._lock:
            existing = self._jobs.get(spec.name.lower())
            if existing is not None:
                raise ApiError(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a training job with "
                    f"this name already exists ({existing.arn})",
                )
            self._jobs[spec.name.lower()] = record
            thread = threading.Thread(target=self._run, args=(record,), name=f"sm-api-{spec.name}", daemon=True)
            self._threads.append(thread)
        thread.start()
        return {"TrainingJobArn": arn}

    def describe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = self._record(str(params["TrainingJobName"]))
        return self._describe(record)

    def stop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = self._record(str(params["TrainingJobName"]))
        status = self._status(record)[0]
        if status != "InProgress":
            raise validation(f"The request was rejected because the training job is in status {status}.")
        job = record.job
        if record.stop_requested is None:
            record.stop_requested = time.time()
            record.modified = record.stop_requested
        if job is not None:
            job.stop(grace=self.platform.grace_s)
        return {}

    def list_jobs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            records = list(self._jobs.values())
        summaries = []
        for record in records:
            status, secondary = self._status(record)
            summary: dict[str, Any] = {
                "TrainingJobName": record.spec.name,
                "TrainingJobArn": record.arn,
                "CreationTime": record.created,
                "LastModifiedTime": record.modified,
                "TrainingJobStatus": status,
                "SecondaryStatus": secondary,
            }
            if record.result is not None and record.result.timeline.finished is not None:
                summary["TrainingEndTime"] = record.result.timeline.finished
            summaries.append(summary)

        def within(value: float | None, after: Any, before: Any) -> bool:
            if after is not None and (value is None or value <= float(after)):
                return False
            return before is None or (value is not None and value < float(before))

        name_part = str(params.get("NameContains", "")).lower()
        summaries = [
            s
            for s in summaries
            if within(s["CreationTime"], params.get("CreationTimeAfter"), params.get("CreationTimeBefore"))
            and within(s["LastModifiedTime"], params.get("LastModifiedTimeAfter"), params.get("LastModifiedTimeBefore"))
            and name_part in s["TrainingJobName"].lower()
            and params.get("StatusEquals") in (None, s["TrainingJobStatus"])
        ]
        sort_key = {"Name": "TrainingJobName", "Status": "TrainingJobStatus"}.get(
            str(params.get("SortBy", "CreationTime")), "CreationTime"
        )
        summaries.sort(
            key=lambda s: (s[sort_key], s["TrainingJobName"]), reverse=params.get("SortOrder") != "Ascending"
        )
        start = _page_start(params.get("NextToken"), params)
        limit = int(params.get("MaxResults", 10))
        out: dict[str, Any] = {"TrainingJobSummaries": summaries[start : start + limit]}
        if start + limit < len(summaries):
            out["NextToken"] = _page_token(start + limit, params)
        return out

    # -- the job's life ---------------------------------------------------------------------------

    def _run(self, record: _Record) -> None:
        """Start the job on the platform and follow it to its end (a thread per job)."""
        try:
            self.platform.engine.image(record.spec.image)  # its one-line reason, before any staging
            job = self.platform.start(record.spec)
        except Exception as exc:  # the platform's one-line reasons: no such image, no engine, a channel
            record.start_error = f"ClientError: {exc}" if str(exc) else f"InternalServerError: {type(exc).__name__}"
            record.modified = time.time()
            record.ended.set()
            return
        started = job.timeline.started or time.time()
        record.log = JobLog(record.spec.name, record.spec.instance_count, started, job.logs)
        self.logs.add(record.log)
        record.job = job
        record.modified = time.time()
        if self._on_start is not None:
            self._on_start(job)
        if record.stop_requested is not None:
            job.stop(grace=self.platform.grace_s)
        result = job.wait()
        record.log.refresh(_full_log(result), final=True)
        record.metrics = _final_metrics(record.request, result)
        record.model_exists = _model_uploaded(result)
        record.result = result
        record.modified = time.time()
        record.ended.set()

    def _record(self, name: str) -> _Record:
        with self._lock:
            record = self._jobs.get(name.lower())
        if record is None:
            raise not_found(f"Requested resource not found: training job {name!r} does not exist")
        return record

    def result(self, name: str, timeout: float | None = None) -> TrainingJobResult | None:
        """The platform's full result of a job created here (logs, files, timeline), once it has ended."""
        record = self._record(name)
        record.ended.wait(timeout)
        return record.result

    def _status(self, record: _Record) -> tuple[str, str]:
        if record.result is not None:
            return record.result.TrainingJobStatus, record.result.SecondaryStatus
        if record.start_error is not None:
            return "Failed", "Failed"
        job = record.job
        if job is None:
            return ("Stopping", "Stopping") if record.stop_requested else ("InProgress", "Starting")
        status = job.status
        if status in ("Completed", "Failed", "Stopped"):  # ended, its result not yet recorded
            return "InProgress", "Uploading"
        secondary = job.secondary_status
        return status, "Stopping" if status == "Stopping" else secondary

    def _transitions(self, record: _Record, status: str, secondary: str) -> list[dict[str, Any]]:
        if record.job is not None and record.job.restarts:  # a restarted job keeps every attempt's (§11)
            return record.job.secondary_status_transitions()
        timeline = record.job.timeline if record.job is not None else None
        steps: list[tuple[str, float | None]] = [("Starting", record.created)]
        if timeline is not None:
            steps.append(("Downloading", timeline.created))
            steps.append(("Training", timeline.started))
            if timeline.sigterm_sent is not None:
                steps.append(("Stopping", timeline.sigterm_sent))
            steps.append(("Uploading", timeline.exited))
        end = record.result.timeline.finished if record.result is not None else None
        if record.start_error is not None:
            end = record.modified
        if status != "InProgress" and status != "Stopping":
            steps.append((secondary, end))
        elif secondary not in (s for s, _ in steps):
            steps.append((secondary, time.time()))
        shown = [(s, t) for s, t in steps if t is not None]
        out = []
        for i, (name, at) in enumerate(shown):
            item: dict[str, Any] = {"Status": name, "StartTime": at, "StatusMessage": _MESSAGES.get(name, name)}
            if i + 1 < len(shown):
                item["EndTime"] = shown[i + 1][1]
            out.append(item)
        if record.start_error is not None and out:
            out[-1]["StatusMessage"] = record.start_error
        return out

    def _describe(self, record: _Record) -> dict[str, Any]:
        status, secondary = self._status(record)
        out: dict[str, Any] = {k: v for k, v in record.request.items() if k in _echoed()}
        out.update(
            TrainingJobName=record.spec.name,
            TrainingJobArn=record.arn,
            TrainingJobStatus=status,
            SecondaryStatus=secondary,
            CreationTime=record.created,
            LastModifiedTime=record.modified,
            SecondaryStatusTransitions=self._transitions(record, status, secondary),
        )
        out.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": record.spec.max_runtime_s})
        out.setdefault("EnableNetworkIsolation", record.spec.network_isolation)
        timeline = record.job.timeline if record.job is not None else None
        if timeline is not None and timeline.started is not None:
            out["TrainingStartTime"] = timeline.started
        result = record.result
        if result is not None:
            end = result.timeline.finished or record.modified
            out["TrainingEndTime"] = end
            if result.timeline.started is not None:
                seconds = max(1, round(end - result.timeline.started))
                out["TrainingTimeInSeconds"] = seconds
                out["BillableTimeInSeconds"] = seconds * record.spec.instance_count
            if result.FailureReason:
                out["FailureReason"] = result.FailureReason
            if record.model_exists:
                out["ModelArtifacts"] = dict(result.ModelArtifacts)
            if record.metrics:
                out["FinalMetricDataList"] = record.metrics
        elif record.start_error is not None:
            out["FailureReason"] = record.start_error[:1024]
            out["TrainingEndTime"] = record.modified
        return out


def _joined(errors: list[str]) -> str:
    more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:4])})" if len(errors) > 1 else ""
    return f"{errors[0]}{more}"


_ECHOED_LOCK = threading.Lock()


def _echoed() -> frozenset[str]:
    """Request fields DescribeTrainingJob returns as they were sent (members of both shapes), read once."""
    with _ECHOED_LOCK:
        return _echoed_fields()


@functools.lru_cache(maxsize=1)
def _echoed_fields() -> frozenset[str]:
    import botocore.session  # lazy: the model is slow to read

    model = botocore.session.get_session().get_service_model("sagemaker")
    request = set(model.operation_model("CreateTrainingJob").input_shape.members)
    response = set(model.operation_model("DescribeTrainingJob").output_shape.members)
    return frozenset(request & response)


def warm_up() -> None:
    """Read the API models once, before clients come (50 first callers would each read them)."""
    _echoed()
    for operation in ("DescribeTrainingJob", "StopTrainingJob", "ListTrainingJobs"):
        validate_input("sagemaker", operation, {})


def _model_uploaded(result: TrainingJobResult) -> bool:
    """Is S3ModelArtifacts in the served S3: the archive, or (CompressionType NONE) objects under the prefix?"""
    uri = result.ModelArtifacts["S3ModelArtifacts"]
    try:
        return result.s3.exists(uri) or next(iter(result.s3.objects(uri)), None) is not None
    except Exception:  # the bucket is gone: nothing to point at
        return False


def _full_log(result: TrainingJobResult) -> str:
    """The job's whole log: the spooled file when there is one (`result.logs` may be truncated)."""
    path = result.log_path
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8", errors="replace").removesuffix("\n")
    return result.logs


def _final_metrics(request: Mapping[str, Any], result: TrainingJobResult) -> list[dict[str, Any]]:
    """FinalMetricDataList: each MetricDefinition's last value in the log, as SageMaker publishes it."""
    definitions = metric_definitions(request)
    if not definitions:
        return []
    lines = _full_log(result).split("\n")
    at = result.timeline.exited or time.time()
    return [
        {"MetricName": m.name, "Value": m.values[-1], "Timestamp": at}
        for m in match_metrics(definitions, lines)
        if m.values
    ]


def _filters(params: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in sorted(params.items()) if k not in ("NextToken", "MaxResults")}, default=str)


def _page_token(start: int, params: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([start, _filters(params)]).encode()).decode()


def _page_start(token: Any, params: Mapping[str, Any]) -> int:
    if not token:
        return 0
    try:
        start, filters = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if filters != _filters(params) or not isinstance(start, int) or start < 0:
            raise ValueError
    except ValueError:
        raise validation("Invalid pagination token: pass the NextToken of a call with the same filters") from None
    return start
