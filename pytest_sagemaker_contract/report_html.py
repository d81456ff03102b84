"""`--sm-html FILE`: the contract report as one self-contained HTML page (no script, no network, no external asset).

Per image: the contract table (each check's full message, fix included), the counts, what went untested, and
per check its log tail, process trees, metrics and jobs; then an SVG timeline of every job the suite ran
(creation, start, the stop trigger, SIGTERM, the grace deadline, exit or SIGKILL, the upload; one lane per
host). It is built on the controller from the same rows as the terminal table and the JSON report, which
reach it through `report.user_properties`, so it is the same under pytest-xdist. With pytest-html installed,
the table and the timeline also go into its report's summary.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .contract import CHECKS
from .report import ContractReport, Row
from .report_file import write_report

__all__ = ["HtmlReport", "image_section", "render", "timeline_svg"]

_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;word-break:break-all}
.meta{color:#59636e;margin-bottom:12px}.counts span{display:inline-block;padding:2px 10px;margin-right:6px;
border-radius:10px;font-weight:600}.c-passed{background:#dafbe1;color:#116329}.c-failed{background:#ffebe9;
color:#a40e26}.c-skipped{background:#fff8c5;color:#7d4e00}.c-not_tested{background:#fbefff;color:#6e40c9}
table.contract{border-collapse:collapse;width:100%;margin:10px 0;table-layout:fixed}table.contract th,table.contract td{
border-bottom:1px solid #d1d9e0;padding:6px 8px;text-align:left;vertical-align:top}
table.contract th{background:#f6f8fa}td.id{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
td.id .meta{font-family:system-ui,sans-serif;font-size:12px}td{overflow-wrap:anywhere}
td.outcome{font-weight:700;white-space:nowrap}tr.passed td.outcome{color:#116329}
tr.failed td.outcome{color:#cf222e}tr.skipped td.outcome{color:#9a6700}td.secs{text-align:right;white-space:nowrap}
tr.failed td{background:#fff5f5}.warn{color:#9a6700}details{margin:4px 0}summary{cursor:pointer;color:#0969da}
pre{background:#f6f8fa;border:1px solid #d1d9e0;border-radius:6px;padding:8px;overflow-x:auto;font-size:12px;
max-height:360px;white-space:pre-wrap;word-break:break-all}.untested{border-left:4px solid #8250df;
padding:4px 10px;background:#fbefff}.untested li{margin:2px 0}svg.timeline{width:100%;height:auto;
border:1px solid #d1d9e0;border-radius:6px;background:#fff}table.metrics td,table.metrics th{padding:2px 8px}
"""
#: Timeline geometry (SVG user units).
_WIDTH, _LABEL_W, _LANE_H, _TOP, _RIGHT = 1200, 300, 22, 46, 20


class HtmlReport:
    """Registered on the controller: writes the page at the end of the session, from `ContractReport`'s rows."""

    def __init__(self, path: Path | None, report: ContractReport) -> None:
        self.path = path
        self.report = report
        self.write_error: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.path is None:
            return
        try:
            write_report(self.path, render(self.report))
        except OSError as exc:
            self.write_error = (
                f"sagemaker-contract: cannot write the HTML report to {self.path} ({exc.strerror or exc}); "
                "the run's results are above, rerun with --sm-html in a writable directory"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR

    @pytest.hookimpl(trylast=True)  # under the contract table
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.write_error is not None:
            terminalreporter.write_line(self.write_error, red=True)
        elif self.path is not None and self.report.images:
            terminalreporter.write_line(f"contract report (HTML): {self.path}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        """pytest-html: the contract table and the timeline above its results table."""
        if self.report.images:
            prefix.append(f"<style>{_STYLE}</style>")
            prefix.extend(image_section(image, rows) for image, rows in _ordered(self.report).items())


def render(report: ContractReport) -> str:
    """The whole page."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    images = _ordered(report)
    body = "\n".join(image_section(image, rows) for image, rows in images.items())
    if not images:
        body = "<p>No contract check ran (pass --sm-image IMAGE to run the built-in suite).</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>SageMaker training contract</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>SageMaker training contract</h1>"
        f'<div class="meta">pytest-sagemaker-contract report, {when}</div>'
        f"{body}</body></html>\n"
    )


def _ordered(report: ContractReport) -> dict[str, list[Row]]:
    order = {c.id: i for i, c in enumerate(CHECKS)}
    return {
        image: sorted(rows, key=lambda r: order.get(r.check_id, len(order))) for image, rows in report.images.items()
    }


def image_section(image: str, rows: list[Row]) -> str:
    """One image: heading, counts, untested clauses, the table, the timeline."""
    e = html.escape
    image_id = next((r.image_id for r in rows if r.image_id), "")
    counts = {k: sum(r.outcome == k for r in rows) for k in ("passed", "failed", "skipped")}
    untested = [r for r in rows if r.outcome == "skipped" and r.skip_kind != "structural"]
    counts["not_tested"] = len(untested)
    counts["reused"] = sum(r.reused is not None for r in rows)
    badges = "".join(
        f'<span class="c-{k}">{v} {k.replace("_", " ")}</span>'
        for k, v in counts.items()
        if v or k not in ("not_tested", "reused")
    )
    out = [
        f'<section class="image" data-image="{e(image)}"><h2>{e(image)}</h2>',
        f'<div class="meta">{e(image_id)}</div>' if image_id else "",
        f'<div class="counts">{badges}</div>',
    ]
    if untested:
        items = "".join(f"<li><b>{e(r.check_id)}</b>: {e(r.message)}</li>" for r in untested)
        out.append(
            '<div class="untested"><b>Not tested</b>: these clauses apply to the image but this run did not test '
            f"them; a green run does not prove them (--sm-strict fails them).<ul>{items}</ul></div>"
        )
    jobs = _jobs(rows)
    out.append("<h3>Timeline of the training jobs</h3>")
    out.append(timeline_svg(jobs) if jobs else "<p>No training job ran for this image.</p>")
    out.append(
        '<h3>Contract checks</h3><table class="contract"><colgroup><col style="width:24%"><col style="width:7%">'
        '<col style="width:7%"><col></colgroup><thead><tr><th>Check</th><th>Outcome</th><th>Time</th>'
        "<th>What was seen, and the fix</th></tr></thead><tbody>"
    )
    out.extend(_row(r) for r in rows)
    out.append("</tbody></table></section>")
    return "\n".join(part for part in out if part)


def _row(r: Row) -> str:
    e = html.escape
    mark = _MARK.get(r.outcome, r.outcome.upper())
    message = e(r.message)
    if r.warnings:
        message += "".join(f'<div class="warn">warning: {e(w)}</div>' for w in r.warnings)
    details = _details(r)
    return (
        f'<tr class="{e(r.outcome)}" id="{e(r.check_id)}"><td class="id" title="{e(r.clause)}">{e(r.check_id)}'
        f'<div class="meta">{e(r.clause)}</div></td><td class="outcome">{mark}</td>'
        f'<td class="secs">{_took(r)}</td><td>{message}{details}</td></tr>'
    )


def _took(r: Row) -> str:
    """The check's time, or "reused" for a verdict --sm-reuse replayed (the session that decided it on hover)."""
    if r.reused is None:
        return f"{r.duration_s:.1f} s"
    return f'<span title="--sm-reuse: decided by session {html.escape(str(r.reused.get("run_id")))}">reused</span>'


def _details(r: Row) -> str:
    e = html.escape
    parts = []
    opened = " open" if r.outcome == "failed" else ""
    if r.log_tail:
        where = f"\n(full log: {r.log_path})" if r.log_path else ""
        parts.append(f"<details{opened}><summary>log tail</summary><pre>{e(r.log_tail + where)}</pre></details>")
    parts.extend(
        f"<details{opened}><summary>{e(title)}</summary><pre>{e(text)}</pre></details>" for title, text in r.sections
    )
    if r.metrics:
        rows = "".join(
            f"<tr><td>{e(name)}</td><td>{len(values)}</td><td>{e(_num(values[-1]) if values else '')}</td></tr>"
            for name, values in r.metrics.items()
        )
        parts.append(
            '<details open><summary>metrics</summary><table class="metrics"><tr><th>metric</th><th>values</th>'
            f"<th>last</th></tr>{rows}</table></details>"
        )
    if r.jobs:
        names = ", ".join(
            e(str(j.get("name"))) + f" ({e(str(j.get('secondary_status') or j.get('status')))})" for j in r.jobs
        )
        parts.append(f'<div class="meta">jobs: {names}</div>')
    return "".join(parts)


def _num(value: float) -> str:
    return f"{value:g}"


def _jobs(rows: list[Row]) -> list[dict[str, Any]]:
    """Every job of the image once (a job shared by checks is reported by the check that started it)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        for job in r.jobs:
            seen.setdefault(str(job.get("name")) + str((job.get("events") or {}).get("created")), job)
    return sorted(seen.values(), key=lambda j: (j.get("events") or {}).get("created") or 0.0)


def timeline_svg(jobs: list[dict[str, Any]]) -> str:
    """An SVG of the jobs on one time axis: a lane per host; staging grey, training blue, stopping orange, upload
    green; marks for the stop trigger, SIGTERM, the grace deadline, SIGKILL and each host's exit."""
    e = html.escape
    lanes = [(job, host) for job in jobs for host in (job.get("hosts") or [{"host": "algo-1"}])]
    times = [t for job in jobs for t in _times(job) if t is not None]
    origin = min(times) if times else 0.0
    span = max(1.0, (max(times) if times else 1.0) - origin)
    plot_w = _WIDTH - _LABEL_W - _RIGHT
    height = _TOP + len(lanes) * _LANE_H + 16

    def x(t: float) -> float:
        return round(_LABEL_W + (t - origin) / span * plot_w, 1)

    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" '
        f'role="img" aria-label="timeline of {len(jobs)} training job(s)" font-family="system-ui,sans-serif" '
        'font-size="11">',
        "<title>Training jobs: staging, training, SIGTERM, grace deadline, exit or SIGKILL, upload</title>",
        *_legend(),
    ]
    step = _tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        tx = x(origin + tick)
        out.append(
            f'<line x1="{tx}" y1="{_TOP - 6}" x2="{tx}" y2="{height - 14}" stroke="#eaeef2"/>'
            f'<text x="{tx}" y="{height - 3}" text-anchor="middle" fill="#59636e">{tick:g} s</text>'
        )
        tick += step
    for i, (job, host) in enumerate(lanes):
        y = _TOP + i * _LANE_H
        ev = job.get("events") or {}
        label = f"{job.get('name')} · {host.get('host')}"
        status = str(job.get("secondary_status") or job.get("status") or "")
        out.append(
            f'<g class="lane" data-job="{e(str(job.get("name")))}" data-host="{e(str(host.get("host")))}">'
            f"<title>{e(label)}: {e(status)}</title>"
            f'<text x="4" y="{y + 14}" fill="#1f2328">{e(_short(label, 44))}</text>'
        )
        exited = host.get("exited") or ev.get("exited")
        stop = ev.get("sigterm_sent")
        segments = [
            ("staging", ev.get("created"), ev.get("started"), "#afb8c1"),
            ("training", ev.get("started"), stop if stop is not None else exited, "#54aeff"),
            ("stopping", stop, exited, "#fb8f44"),
            ("upload", exited, ev.get("finished"), "#4ac26b"),
        ]
        for name, start, end, colour in segments:
            if start is None or end is None or end < start:
                continue
            width = max(1.5, x(end) - x(start))
            out.append(
                f'<rect class="{name}" x="{x(start)}" y="{y + 4}" width="{round(width, 1)}" height="{_LANE_H - 8}" '
                f'fill="{colour}" rx="2"><title>{name}: {end - start:.1f} s</title></rect>'
            )
        out.extend(_marks(ev, host, exited, x, y))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _marks(ev: dict[str, Any], host: dict[str, Any], exited: float | None, x: Any, y: float) -> list[str]:
    out = []
    top, bottom = y + 1, y + _LANE_H - 1
    for key, colour, dash, what in (
        ("stop_requested", "#8250df", "3,2", "stop trigger"),
        ("sigterm_sent", "#bc4c00", "", "SIGTERM"),
        ("kill_due", "#cf222e", "4,3", "grace deadline (SIGKILL due)"),
    ):
        t = ev.get(key)
        if t is None:
            continue
        style = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line class="{key}" x1="{x(t)}" y1="{top}" x2="{x(t)}" y2="{bottom}" stroke="{colour}" '
            f'stroke-width="2"{style}><title>{what}</title></line>'
        )
    kill = ev.get("sigkill_sent") if host.get("killed") else None
    if kill is not None:
        kx = x(kill)
        out.append(
            f'<path class="sigkill" d="M{kx - 5},{y + 6}L{kx + 5},{y + 16}M{kx + 5},{y + 6}L{kx - 5},{y + 16}" '
            f'stroke="#a40e26" stroke-width="3"><title>SIGKILL</title></path>'
        )
    if exited is not None:
        cx = x(exited)
        code = host.get("exit_code")
        fill = "#1a7f37" if code == 0 else "#cf222e"
        out.append(
            f'<circle class="exit" cx="{cx}" cy="{y + _LANE_H / 2}" r="5" fill="{fill}" stroke="#fff">'
            f"<title>exit code {code}</title></circle>"
            f'<text x="{cx + 7}" y="{y + 15}" fill="{fill}" font-size="10">{code}</text>'
        )
    return out


def _legend() -> list[str]:
    items = [
        ("rect", "#afb8c1", "staging"),
        ("rect", "#54aeff", "training"),
        ("rect", "#fb8f44", "after SIGTERM"),
        ("rect", "#4ac26b", "upload"),
        ("line", "#8250df", "stop trigger"),
        ("line", "#bc4c00", "SIGTERM"),
        ("line", "#cf222e", "grace deadline"),
        ("x", "#a40e26", "SIGKILL"),
        ("dot", "#1a7f37", "exit (code)"),
    ]
    out = ['<g class="legend">']
    lx = 8.0
    for kind, colour, text in items:
        if kind == "rect":
            out.append(f'<rect x="{lx}" y="10" width="18" height="10" fill="{colour}" rx="2"/>')
        elif kind == "line":
            out.append(f'<line x1="{lx + 9}" y1="8" x2="{lx + 9}" y2="22" stroke="{colour}" stroke-width="2"/>')
        elif kind == "x":
            out.append(
                f'<path d="M{lx + 4},9L{lx + 14},21M{lx + 14},9L{lx + 4},21" stroke="{colour}" stroke-width="3"/>'
            )
        else:
            out.append(f'<circle cx="{lx + 9}" cy="15" r="5" fill="{colour}"/>')
        out.append(f'<text x="{lx + 22}" y="19" fill="#1f2328">{text}</text>')
        lx += 30 + 6.5 * len(text)
    out.append("</g>")
    return out


def _times(job: dict[str, Any]) -> list[float | None]:
    events = job.get("events") or {}
    return [*events.values(), *(h.get("exited") for h in job.get("hosts") or [])]


def _tick_step(span: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 12:
            return float(step)
    return 7200.0


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
