"""MetricDefinitions read from a training log as SageMaker reads it: the pure rule, shared by the contract's
SM-METRICS check and the served DescribeTrainingJob's FinalMetricDataList.

SageMaker scans the training container's stdout/stderr, as CloudWatch Logs stores it, with each
definition's Regex and publishes the first capture group as the metric's value (a number; CloudWatch
takes no text, NaN or infinity). CloudWatch escapes control characters syslog-style as `#` and three
octal digits (a tab is `#011`, a carriage return `#015`, ESC `#033`); `cloudwatch_text` does that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MetricMatch", "cloudwatch_text", "match_metrics", "metric_definitions"]

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
