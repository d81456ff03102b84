"""CloudWatch Logs as a training job writes it: group /aws/sagemaker/TrainingJobs, one stream per host
named `<job>/algo-N-<epoch>`, events as CloudWatch stores them (control characters escaped).

Lines are taken from the job's log when a client asks (DescribeLogStreams, GetLogEvents, FilterLogEvents)
and once more when the job has ended, so SDK polling costs one read of the log per poll and nothing in
between. An event's timestamp is when the server first saw the line.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..platform.metrics import cloudwatch_text
from .errors import ApiError

__all__ = ["LOG_GROUP", "CloudWatchLogs", "JobLog"]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: How often one job's log is read again at most, however many clients poll.
REFRESH_S = 0.2
_HOST_PREFIX = re.compile(r"\[(algo-\d+)\] ")
_ACCOUNT = "123456789012"


@dataclass
class _Stream:
    name: str
    created_ms: int
    events: list[tuple[int, str]] = field(default_factory=list)
    stored_bytes: int = 0


class JobLog:
    """One job's streams. `source` returns the job's log text so far (host-prefixed for N hosts)."""

    def __init__(self, job_name: str, hosts: int, started: float, source: Callable[[], str]) -> None:
        self.job_name = job_name
        self._multi = hosts > 1
        epoch = int(started)
        self.streams = {
            f"algo-{i}": _Stream(f"{job_name}/algo-{i}-{epoch}", int(started * 1000)) for i in range(1, hosts + 1)
        }
        self._source = source
        self._seen = 0
        self._last_line = ""
        self._read_at = 0.0
        self._lock = threading.Lock()
        self.final = False

    def refresh(self, text: str | None = None, final: bool = False) -> None:
        """Take the lines the job wrote since the last read (`text`: the whole log, else read from the job)."""
        with self._lock:
            if self.final or (text is None and time.monotonic() - self._read_at < REFRESH_S):
                return
            self._read_at = time.monotonic()
            if text is None:
                try:
                    text = self._source()
                except Exception:  # the job is just ending: its final log comes with the result
                    return
            lines = text.split("\n") if text else []
            if lines and lines[0].startswith("[sagemaker-contract: log truncated"):
                lines = lines[1:]
                new = lines[lines.index(self._last_line) + 1 :] if self._last_line in lines else lines
            else:
                new = lines[self._seen :]
                self._seen = len(lines)
            now_ms = int(time.time() * 1000)
            for line in new:
                host = "algo-1"
                if self._multi:
                    found = _HOST_PREFIX.match(line)
                    if found is not None and found.group(1) in self.streams:
                        host, line = found.group(1), line[found.end() :]
                message = cloudwatch_text(line)
                stream = self.streams[host]
                stream.events.append((now_ms, message))
                stream.stored_bytes += len(message.encode())
            if new:
                self._last_line = new[-1]
            self.final = final


def _token(kind: str, index: int) -> str:
    return f"{kind}/{index:020d}"


def _index(token: str, kind: str) -> int:
    prefix, _, number = token.partition("/")
    if prefix != kind or not number.isdigit():
        raise ApiError("InvalidParameterException", f"The specified nextToken is invalid: {token!r}")
    return int(number)


class CloudWatchLogs:
    """The Logs operations the SDKs call around a training job, over the jobs' `JobLog`s."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._jobs: dict[str, JobLog] = {}
        self._lock = threading.Lock()
        self.created_ms = int(time.time() * 1000)

    def add(self, log: JobLog) -> None:
        with self._lock:
            self._jobs[log.job_name] = log

    def _streams(self, group: str, prefix: str = "", names: list[str] | None = None) -> list[_Stream]:
        if group != LOG_GROUP or not self._jobs:
            raise ApiError("ResourceNotFoundException", "The specified log group does not exist.")
        with self._lock:
            logs = list(self._jobs.values())
        out: list[_Stream] = []
        for log in logs:
            if not (log.job_name.startswith(prefix) or prefix.startswith(log.job_name)):
                continue
            if names is not None and not any(s.name in names for s in log.streams.values()):
                continue
            log.refresh()
            out.extend(
                s for s in log.streams.values() if s.name.startswith(prefix) and (names is None or s.name in names)
            )
        return out

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        handler = {
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        }.get(operation)
        if handler is None:
            raise ApiError(
                "UnknownOperationException",
                f"sm-contract serves Logs DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents, "
                f"not {operation}",
            )
        return handler(params)

    def _arn(self, stream: str | None = None) -> str:
        base = f"arn:aws:logs:{self.region}:{_ACCOUNT}:log-group:{LOG_GROUP}"
        return f"{base}:log-stream:{stream}" if stream else f"{base}:*"

    def describe_log_groups(self, params: Mapping[str, Any]) -> dict[str, Any]:
        prefix = str(params.get("logGroupNamePrefix", ""))
        with self._lock:
            exists = bool(self._jobs)
        groups = []
        if exists and LOG_GROUP.startswith(prefix):
            groups.append({"logGroupName": LOG_GROUP, "creationTime": self.created_ms, "arn": self._arn()})
        return {"logGroups": groups}

    def describe_log_streams(self, params: Mapping[str, Any]) -> dict[str, Any]:
        prefix = str(params.get("logStreamNamePrefix", ""))
        order = params.get("orderBy", "LogStreamName")
        if prefix and order == "LastEventTime":
            raise ApiError("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
        streams = self._streams(str(params.get("logGroupName", "")), prefix)
        if order == "LastEventTime":
            streams.sort(key=lambda s: s.events[-1][0] if s.events else s.created_ms)
        else:
            streams.sort(key=lambda s: s.name)
        if params.get("descending"):
            streams.reverse()
        start = _index(str(params["nextToken"]), "s") if params.get("nextToken") else 0
        limit = int(params.get("limit", 50))
        page = streams[start : start + limit]
        out: dict[str, Any] = {
            "logStreams": [
                {
                    "logStreamName": s.name,
                    "creationTime": s.created_ms,
                    **(
                        {
                            "firstEventTimestamp": s.events[0][0],
                            "lastEventTimestamp": s.events[-1][0],
                            "lastIngestionTime": s.events[-1][0],
                        }
                        if s.events
                        else {}
                    ),
                    "arn": self._arn(s.name),
                    "storedBytes": s.stored_bytes,
                }
                for s in page
            ]
        }
        if start + limit < len(streams):
            out["nextToken"] = _token("s", start + limit)
        return out

    def get_log_events(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = str(params.get("logStreamName", ""))
        found = [s for s in self._streams(str(params.get("logGroupName", "")), names=[name]) if s.name == name]
        if not found:
            raise ApiError("ResourceNotFoundException", "The specified log stream does not exist.")
        events = list(found[0].events)
        start_ms = params.get("startTime")
        end_ms = params.get("endTime")
        window = [
            i
            for i, (ts, _) in enumerate(events)
            if (start_ms is None or ts >= int(start_ms)) and (end_ms is None or ts < int(end_ms))
        ]
        lo, hi = (window[0], window[-1] + 1) if window else (len(events), len(events))
        limit = int(params.get("limit", 10000))
        token = params.get("nextToken")
        if token:
            kind = str(token)[:1]
            at = _index(str(token), kind if kind in ("f", "b") else "f")
            first, last = (at, min(hi, at + limit)) if kind == "f" else (max(lo, at - limit), at)
        elif params.get("startFromHead"):
            first, last = lo, min(hi, lo + limit)
        else:
            first, last = max(lo, hi - limit), hi
        first, last = max(first, 0), max(last, first)
        return {
            "events": [{"timestamp": ts, "message": m, "ingestionTime": ts} for ts, m in events[first:last]],
            "nextForwardToken": _token("f", last),
            "nextBackwardToken": _token("b", first),
        }

    def filter_log_events(self, params: Mapping[str, Any]) -> dict[str, Any]:
        names = params.get("logStreamNames")
        streams = self._streams(
            str(params.get("logGroupName", "")),
            str(params.get("logStreamNamePrefix", "")),
            list(names) if names else None,
        )
        terms = [t.strip('"') for t in str(params.get("filterPattern", "")).split() if t.strip('"')]
        start_ms, end_ms = params.get("startTime"), params.get("endTime")
        merged = sorted(
            (ts, s.name, i, m)
            for s in streams
            for i, (ts, m) in enumerate(s.events)
            if (start_ms is None or ts >= int(start_ms))
            and (end_ms is None or ts <= int(end_ms))
            and all(t in m for t in terms)
        )
        start = _index(str(params["nextToken"]), "e") if params.get("nextToken") else 0
        limit = int(params.get("limit", 10000))
        page = merged[start : start + limit]
        out: dict[str, Any] = {
            "events": [
                {"logStreamName": n, "timestamp": ts, "message": m, "ingestionTime": ts, "eventId": f"{ts}-{n}-{i}"}
                for ts, n, i, m in page
            ],
            "searchedLogStreams": [{"logStreamName": s.name, "searchedCompletely": True} for s in streams],
        }
        if start + limit < len(merged):
            out["nextToken"] = _token("e", start + limit)
        return out
