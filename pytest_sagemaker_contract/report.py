"""The contract report: per-check properties on each test report, the terminal table, the JSON file.

Everything the table and the JSON need travels in `report.user_properties`, so it crosses
pytest-xdist's worker→controller boundary and lands in JUnit XML as `<property>` elements.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .contract import CHECKS
from .report_file import write_report
from .report_junit import json_object, parse_sections
from .report_timeline import parse_timeline

__all__ = ["ContractReport", "Row", "properties_for"]

PREFIX = "sm_"


@dataclass
class Row:
    check_id: str
    clause: str
    outcome: str
    message: str
    duration_s: float
    image_id: str = ""
    log_path: str = ""
    warnings: list[str] = field(default_factory=list)
    #: SM-METRICS: each MetricDefinition's values read from the log, in log order.
    metrics: dict[str, list[float]] = field(default_factory=dict)
    #: For a skip: "structural" (does not apply) or "untested" (applies, but this run did not test it).
    skip_kind: str = ""
    #: The last lines of the check's job log (`sm_log_tail`).
    log_tail: str = ""
    #: What else the check saw: process tree at SIGTERM, signal dispositions, ... (`sm_sections`).
    sections: list[tuple[str, str]] = field(default_factory=list)
    #: The jobs the check started, each with its timeline events (`sm_timeline`, report_timeline.job_entry).
    jobs: list[dict[str, Any]] = field(default_factory=list)
    #: --sm-reuse: the kept verdict's origin (`at`, `run_id`, `duration_s`) when this row was replayed, not run.
    reused: dict[str, Any] | None = None


def _metrics(props: dict[str, object]) -> dict[str, list[float]]:
    """The `sm_metrics` property (a JSON object, so it survives xdist and JUnit as one string)."""
    raw = props.get("sm_metrics")
    if not isinstance(raw, str):
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): [float(v) for v in vs] for k, vs in data.items()} if isinstance(data, dict) else {}


def properties_for(
    *,
    check_id: str,
    clause: str,
    image: str,
    image_id: str,
    outcome: str,
    message: str,
    duration_s: float,
    log_path: str,
    warnings: list[str],
    skip_kind: str = "",
) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("sm_check_id", check_id),
        ("sm_clause", clause),
        ("sm_image", image),
        ("sm_image_id", image_id),
        ("sm_outcome", outcome),
        ("sm_reason", message),
        ("sm_seconds", round(duration_s, 3)),
    ]
    if log_path:
        props.append(("sm_log_path", log_path))
    if outcome == "skipped":
        props.append(("sm_skip", skip_kind or "untested"))
    props.extend(("sm_warning", w) for w in warnings)
    return props


def _one_line(text: str, limit: int = 160) -> str:
    """One line of at most `limit` characters; a long one loses its middle, never its end, where the fix is."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    head = limit * 2 // 5
    return line[:head].rstrip() + " … " + line[-(limit - head - 3) :].lstrip()


class ContractReport:
    """Collects contract rows from test reports (on the xdist controller too) and renders them."""

    def __init__(self, report_path: Path | None, is_worker: bool) -> None:
        self.report_path = report_path
        self.is_worker = is_worker
        self.images: dict[str, list[Row]] = {}
        #: Why the report file could not be written at the end (shown in the summary), or None.
        self.write_error: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(p for p in report.user_properties if p[0] != "sm_warning")
        if "sm_check_id" not in props or props.get("sm_phase") != report.when:
            return
        row = Row(
            check_id=str(props["sm_check_id"]),
            clause=str(props.get("sm_clause", "")),
            outcome=str(props["sm_outcome"]),
            message=str(props.get("sm_reason", "")),
            duration_s=float(props.get("sm_seconds", 0.0)),  # type: ignore[arg-type]
            image_id=str(props.get("sm_image_id", "")),
            log_path=str(props.get("sm_log_path", "")),
            warnings=[str(v) for k, v in report.user_properties if k == "sm_warning"],
            metrics=_metrics(props),
            skip_kind=str(props.get("sm_skip", "")),
            log_tail=str(props.get("sm_log_tail", "")),
            sections=parse_sections(props.get("sm_sections")),
            jobs=parse_timeline(props.get("sm_timeline")),
            reused=json_object(props.get("sm_reused")),
        )
        self.images.setdefault(str(props["sm_image"]), []).append(row)

    def as_json(self) -> dict[str, Any]:
        images = []
        order = {c: i for i, c in enumerate(_check_order())}
        for image, unordered in self.images.items():
            rows = sorted(unordered, key=lambda r: order.get(r.check_id, len(order)))
            image_id = next((r.image_id for r in rows if r.image_id), "")
            images.append(
                {
                    "image": image,
                    "image_id": image_id,
                    "checks": [
                        {
                            "id": r.check_id,
                            "clause": r.clause,
                            "outcome": r.outcome,
                            "message": r.message,
                            "duration_s": round(r.duration_s, 3),
                            **({"warnings": r.warnings} if r.warnings else {}),
                            **({"log_path": r.log_path} if r.log_path else {}),
                            **({"metrics": r.metrics} if r.metrics else {}),
                            **({"skip": r.skip_kind} if r.outcome == "skipped" else {}),
                            **({"jobs": r.jobs} if r.jobs else {}),
                            **({"reused": r.reused} if r.reused is not None else {}),
                        }
                        for r in rows
                    ],
                    "summary": _counts(rows),
                    "not_tested": [{"id": r.check_id, "reason": r.message} for r in rows if _untested(r)],
                }
            )
        return {"images": images}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or self.report_path is None:
            return
        try:
            write_report(self.report_path, json.dumps(self.as_json(), indent=2) + "\n")
        except OSError as exc:
            self.write_error = (
                f"sagemaker-contract: cannot write the contract report to {self.report_path} "
                f"({exc.strerror or exc}); the run's results are above, rerun with --sm-report in a writable directory"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.write_error is not None:
            terminalreporter.write_line(self.write_error, red=True)
        if not self.images:
            return
        tr = terminalreporter
        tr.write_sep("=", "SageMaker training contract")
        for image, rows in self.images.items():
            image_id = next((r.image_id for r in rows if r.image_id), "")
            tr.write_line(f"{image}" + (f"  ({image_id[:19]})" if image_id else ""))
            order = {c: i for i, c in enumerate(_check_order())}
            rows = sorted(rows, key=lambda r: order.get(r.check_id, len(order)))
            width = max(len(r.check_id) for r in rows)
            for r in rows:
                mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}.get(r.outcome, r.outcome.upper())
                warn = " (warning)" if r.warnings else ""
                took = " reused" if r.reused is not None else f"{r.duration_s:6.1f}s"
                head = f"  {r.check_id:<{width}}  {mark}  {took}  "
                colour = {"red": mark == "FAIL", "green": mark == "PASS", "yellow": mark == "SKIP"}
                for line in _wrapped(head, _one_line(r.message + warn, 600), getattr(tr, "_tw", None)):
                    tr.write_line(line, **colour)
            counts = _counts(rows)
            reuse_note = f" ({counts['reused']} reused)" if counts["reused"] else ""
            tr.write_line(
                f"  {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped{reuse_note}"
            )
            untested = [r for r in rows if _untested(r)]
            if untested:
                tr.write_line(
                    f"  NOT TESTED ({len(untested)}): these clauses apply to the image but this run did not test "
                    "them; a green run does not prove them (--sm-strict fails them):",
                    yellow=True,
                    bold=True,
                )
                for r in untested:
                    tr.write_line(f"    {r.check_id}: {' '.join(r.message.split())}", yellow=True)
        reused = sum(r.reused is not None for rows in self.images.values() for r in rows)
        if reused:
            tr.write_line(
                f"sagemaker-contract: {reused} reused: verdicts kept by an earlier run of the same image id, request, "
                "channels, options and plugin (--sm-reuse; --cache-clear runs every check again)"
            )
        if self.report_path is not None and not self.is_worker and self.write_error is None:
            tr.write_line(f"contract report: {self.report_path}")


def _wrapped(head: str, text: str, writer: Any) -> list[str]:
    """The row's message, never cut (the fix is at its end): wrapped under its own column on a terminal, one
    whole line in a log, where lines are searched rather than read in a window."""
    stream = getattr(writer, "_file", None)
    if stream is None or not hasattr(stream, "isatty") or not stream.isatty():
        return [head + text]
    width = max(80, int(getattr(writer, "fullwidth", 120) or 120))
    lines = textwrap.wrap(text, width=max(40, width - len(head))) or [""]
    return [head + lines[0], *(" " * len(head) + line for line in lines[1:])]


def _counts(rows: list[Row]) -> dict[str, int]:
    counts = {k: sum(r.outcome == k for r in rows) for k in ("passed", "failed", "skipped")}
    counts["not_tested"] = sum(_untested(r) for r in rows)
    counts["reused"] = sum(r.reused is not None for r in rows)
    return counts


def _untested(row: Row) -> bool:
    return row.outcome == "skipped" and row.skip_kind != "structural"


def _check_order() -> list[str]:
    return [c.id for c in CHECKS]
