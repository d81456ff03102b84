"""The jobs a test started and their timelines, as plain data for the reports.

`JobRequest.start` records each job on the test that asked for it; at the test's verdict the plugin turns
them into the `sm_timeline` property (JSON), so the timeline crosses xdist's worker→controller boundary
like every other part of the report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .platform import TrainingJob

__all__ = ["JOBS_KEY", "TIMELINE_EVENTS", "job_entry", "parse_timeline", "record_job", "timeline_json"]

JOBS_KEY = pytest.StashKey[list[TrainingJob]]()
#: The events of a job, in the order they happen (each an epoch second or null).
TIMELINE_EVENTS = (
    "created",
    "started",
    "stop_requested",
    "sigterm_sent",
    "kill_due",
    "sigkill_sent",
    "exited",
    "finished",
)


def record_job(node: pytest.Item, job: TrainingJob) -> None:
    """Remember that `node` started `job` (checks run in threads: list.append is atomic)."""
    node.stash.setdefault(JOBS_KEY, []).append(job)


def job_entry(job: TrainingJob) -> dict[str, Any]:
    """One job's name, verdict, hosts and timeline events; a job still running reports what it has so far."""
    timeline = job.timeline
    entry: dict[str, Any] = {
        "name": job.spec.name,
        "status": job.status,
        "events": {name: _rounded(getattr(timeline, name)) for name in TIMELINE_EVENTS},
        "hosts": [{"host": host} for host in job.spec.hosts],
    }
    if job.done:
        result = job.wait(0)
        entry["secondary_status"] = result.SecondaryStatus
        if result.FailureReason:
            entry["failure_reason"] = result.FailureReason
        entry["hosts"] = [
            {
                "host": h.host,
                "exit_code": h.exit_code,
                "killed": h.killed,
                "oom_killed": h.oom_killed,
                "exited": _rounded(h.exited),
            }
            for h in result.hosts
        ]
    if timeline.process_tree:
        entry["process_tree_at_sigterm"] = [dict(p) for p in timeline.process_tree]
    return entry


def timeline_json(jobs: list[TrainingJob]) -> str:
    """The `sm_timeline` property: a JSON list of `job_entry`s, in start order."""
    ordered = sorted(jobs, key=lambda j: j.timeline.created or 0.0)
    return json.dumps([job_entry(job) for job in ordered], separators=(",", ":"))


def json_list(raw: object) -> list[Any]:
    """A JSON-list user property back as a list (empty when absent or malformed: properties cross xdist)."""
    if not isinstance(raw, str):
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    return data if isinstance(data, list) else []


def parse_timeline(raw: object) -> list[dict[str, Any]]:
    """The `sm_timeline` property back as a list of job entries (empty when absent or malformed)."""
    return [entry for entry in json_list(raw) if isinstance(entry, dict)]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
