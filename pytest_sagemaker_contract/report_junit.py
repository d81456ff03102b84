"""What a contract check saw, for the people who read it in a CI test-report page.

The check's log tail, its sections (process tree at SIGTERM, signal dispositions, log after SIGTERM) and its
jobs' timelines travel as properties of the check's decisive report (`detail_properties`), so they cross
xdist's worker→controller boundary. `JUnitDetails` writes them into the JUnit test case's `<system-out>`,
which GitLab's and GitHub's test-report pages show beside the failure message.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from _pytest.junitxml import xml_key

from .platform import TrainingJob
from .report_timeline import json_list, parse_timeline, timeline_json

__all__ = ["JUnitDetails", "detail_properties", "details_text", "json_object", "parse_sections"]

#: Characters XML 1.0 cannot hold (control characters a log may carry).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def detail_properties(
    log_tail: str, sections: Sequence[tuple[str, str]], jobs: Sequence[TrainingJob]
) -> list[tuple[str, object]]:
    """`sm_log_tail`, `sm_sections` (a JSON list of [title, text]) and `sm_timeline`, each only when there is one."""
    props: list[tuple[str, object]] = []
    if log_tail:
        props.append(("sm_log_tail", log_tail))
    if sections:
        props.append(("sm_sections", json.dumps([[title, text] for title, text in sections])))
    if jobs:
        props.append(("sm_timeline", timeline_json(list(jobs))))
    return props


def parse_sections(raw: object) -> list[tuple[str, str]]:
    """The `sm_sections` property back as (title, text) pairs (empty when absent or malformed)."""
    return [(str(p[0]), str(p[1])) for p in json_list(raw) if isinstance(p, list) and len(p) == 2]


def details_text(props: dict[str, Any]) -> str:
    """The check's message, jobs, log tail and sections as plain text (empty when the check has none)."""
    parts: list[str] = []
    if props.get("sm_reason"):
        parts.append(f"{props.get('sm_check_id', '')} {str(props.get('sm_outcome', '')).upper()}: {props['sm_reason']}")
    reused = json_object(props.get("sm_reused"))
    if reused is not None:
        parts.append(
            f"reused (--sm-reuse): decided by session {reused.get('run_id')} at {_clock(float(reused.get('at') or 0))}"
            f" in {reused.get('duration_s')} s; nothing it depends on has changed since"
        )
    jobs = parse_timeline(props.get("sm_timeline"))
    if jobs:
        parts.append("--- training jobs ---\n" + "\n".join(_job_line(job) for job in jobs))
    if props.get("sm_log_tail"):
        tail = str(props["sm_log_tail"])
        if props.get("sm_log_path"):
            tail += f"\n(full log: {props['sm_log_path']})"
        parts.append("--- sagemaker log (tail) ---\n" + tail)
    parts.extend(f"--- {title} ---\n{text}" for title, text in parse_sections(props.get("sm_sections")))
    return "\n\n".join(parts)


def json_object(raw: object) -> dict[str, Any] | None:
    """A JSON-object user property back as a dict, or None when absent or malformed."""
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _job_line(job: dict[str, Any]) -> str:
    events = job.get("events") or {}
    origin = events.get("created") or events.get("started")
    shown = []
    for name, value in events.items():
        if value is None:
            continue
        if origin is None or name == "created":
            shown.append(f"{name} {_clock(value)}")
        else:
            shown.append(f"{name} +{value - origin:.1f}s")
    hosts = ", ".join(
        f"{h.get('host')}: exit {h.get('exit_code')}" + (" (SIGKILL)" if h.get("killed") else "")
        for h in job.get("hosts") or []
    )
    status = job.get("secondary_status") or job.get("status")
    return f"{job.get('name')}: {job.get('status')}/{status}; {'; '.join(shown)}; {hosts}"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3] + "Z"


class JUnitDetails:
    """Registered on the controller: adds `<system-out>` to each contract check's JUnit test case."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)  # after junitxml's own hook, so <system-out> follows <failure>/<skipped>
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        props = dict(p for p in report.user_properties if p[0] != "sm_warning")
        if "sm_check_id" not in props or props.get("sm_phase") != report.when:
            return
        text = details_text(props)
        if not text:
            return
        node = ET.Element("system-out")
        node.text = _NOT_XML.sub("?", text)
        xml.node_reporter(report).append(node)
