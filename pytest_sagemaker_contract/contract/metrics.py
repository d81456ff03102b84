"""§10 Metrics: each MetricDefinitions regex finds its metric in the algorithm's log, as SageMaker reads it.

SageMaker scans the training container's stdout/stderr with each definition's Regex and publishes the
first capture group as the metric's value (a number; CloudWatch takes no text, NaN or infinity). A
regex that never matches means the metric is never published, and a tuning job whose objective it is
cannot rank the job. The API model limits: Name 1-255 and Regex 1-500 characters, at most 40
definitions (validated with the rest of the request by `spec.py`).

The regexes see the log as CloudWatch stores it, not the raw bytes: control characters arrive escaped
syslog-style as `#` and three octal digits (a tab is `#011`, a carriage return `#015`, ESC `#033`), which
is why AWS's own XGBoost container matches `#011validation-auc:`. `cloudwatch_text` does that escaping;
a regex that needs a raw tab (`\t` or a literal one) never matches there, and says so.

`match_metrics` is the pure rule (no Docker); the check applies it to the default run's full log.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .suite import Suite, check

__all__ = ["MetricMatch", "cloudwatch_text", "log_lines", "match_metrics", "metric_definitions"]

#: How many log lines that mention a metric's name a never-matching definition shows.
SHOWN_LINES = 5


@dataclass
class MetricMatch:
    """What one MetricDefinition found in a log."""

    name: str
    regex: str
    #: Every value the regex captured that parses as a number, in log order.
    values: list[float] = field(default_factory=list)
    #: Why the definition fails (None when it matched with numbers only).
    problem: str | None = None


def metric_definitions(request: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(Name, Regex) of each AlgorithmSpecification.MetricDefinitions entry of a CreateTrainingJob request."""
    algo = (request or {}).get("AlgorithmSpecification") or {}
    return [(str(d.get("Name", "")), str(d.get("Regex", ""))) for d in algo.get("MetricDefinitions") or []]


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def cloudwatch_text(line: str) -> str:
    """A log line as CloudWatch Logs stores a training job's output: every control character but the line
    break (C0 and DEL) escaped as `#` plus its three-digit octal code (tab -> `#011`, CR -> `#015`)."""
    return _CONTROL.sub(lambda m: f"#{ord(m.group()):03o}", line)


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")


def _raw_tab_hint(regex: str) -> str:
    """Why a regex that wants a raw tab finds nothing on SageMaker, or '' when it wants none."""
    if "\t" not in regex and "\\t" not in regex:
        return ""
    return (
        ": it matches a raw tab (\\t or a literal tab), but SageMaker applies it to the log as CloudWatch stores it, "
        "where a tab is the text #011; write #011 instead of \\t"
    )


def _mentions(lines: Sequence[str], name: str) -> list[str]:
    wanted = name.lower()
    return [line for line in lines if wanted in line.lower()][:SHOWN_LINES]


def match_metrics(definitions: Iterable[tuple[str, str]], lines: Sequence[str]) -> list[MetricMatch]:
    """Apply each (name, regex) to every log line as CloudWatch stores it (`cloudwatch_text`), as SageMaker
    does: the first match in a line, its first capture group as the value. A definition fails when its regex
    does not compile, has no capture group, never matches, or captures something that is not a (finite)
    number."""
    lines = [cloudwatch_text(line) for line in lines]
    out: list[MetricMatch] = []
    for name, regex in definitions:
        match = MetricMatch(name, regex)
        out.append(match)
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            match.problem = f"Regex {regex!r} is not a valid regular expression ({exc})"
            continue
        if pattern.groups < 1:
            match.problem = (
                f"Regex {regex!r} has no capture group: SageMaker publishes the first capture group as the value; "
                "put parentheses around the number, e.g. loss=([0-9.eE+-]+)"
            )
            continue
        seen = False
        for line in lines:
            found = pattern.search(line)
            if found is None:
                continue
            seen = True
            captured = found.group(1)
            value = _number(captured) if captured is not None else None
            if value is None:
                match.problem = (
                    f"Regex {regex!r} captured {captured!r}, which is not a number, in the log line {line.strip()!r}: "
                    "SageMaker publishes the first capture group as a number; capture only the digits"
                )
                break
            match.values.append(value)
        if not seen:
            mentions = _mentions(lines, name)
            shown = (
                "; log lines that mention it: " + " | ".join(m.strip() for m in mentions)
                if mentions
                else f"; no log line mentions {name!r} (case-insensitive)"
            )
            match.problem = (
                f"Regex {regex!r} matched no log line, so SageMaker would publish no {name!r}"
                f"{_raw_tab_hint(regex)}{shown}"
            )
    return out


def log_lines(result: Any) -> list[str]:
    """The default run's whole log: the spooled file when there is one (`result.logs` may be truncated)."""
    path = getattr(result, "log_path", None)
    if path is not None and Path(path).is_file():
        with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:  # a CR is no line break
            return [line.rstrip("\n") for line in handle]
    return str(result.logs).split("\n")


def _record(sm_contract: Suite, matches: list[MetricMatch]) -> None:
    """The series in the JSON report (`metrics`) and the last value of each as a JUnit property."""
    series = {m.name: m.values for m in matches if m.values}
    if not series:
        return
    props = sm_contract.item.user_properties
    props.append(("sm_metrics", json.dumps(series)))
    props.extend((f"sm_metric_{name}", values[-1]) for name, values in series.items())


@check(
    "SM-METRICS",
    "§10 MetricDefinitions: SageMaker publishes each Regex's first capture group found in the log",
    "every MetricDefinitions regex matches the default run's log with a number (the series go into the report)",
)
def sm_metrics(sm_contract: Suite) -> None:
    definitions = metric_definitions(sm_contract.settings.job_request)
    if not definitions:
        sm_contract.skip(
            "the job has no AlgorithmSpecification.MetricDefinitions; add them to --sm-job to check that "
            "SageMaker can read your metrics from the log",
            structural=True,
        )
    result = sm_contract.require_default()
    matches = match_metrics(definitions, log_lines(result))
    _record(sm_contract, matches)
    problems = [f"{m.name}: {m.problem}" for m in matches if m.problem]
    if problems:
        sm_contract.fail(f"{len(problems)} of {len(matches)} metric(s) unreadable: " + "; ".join(problems), result)
    shown = ", ".join(f"{m.name}={m.values[-1]:g} ({len(m.values)} value(s))" for m in matches)
    sm_contract.says(f"{len(matches)} metric(s) read from the log: {shown}")
