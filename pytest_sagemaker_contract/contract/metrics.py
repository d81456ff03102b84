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
from pathlib import Path

from ..platform import TrainingJobResult
from ..platform.metrics import MetricMatch, cloudwatch_text, match_metrics, metric_definitions
from .suite import CheckContext, check

__all__ = ["MetricMatch", "cloudwatch_text", "log_lines", "match_metrics", "metric_definitions"]


def log_lines(result: TrainingJobResult) -> list[str]:
    """The default run's whole log: the spooled file when there is one (`result.logs` may be truncated)."""
    path = result.log_path
    if path is not None and Path(path).is_file():
        with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:  # a CR is no line break
            return [line.rstrip("\n") for line in handle]
    return str(result.logs).split("\n")


def _record(sm_contract: CheckContext, matches: list[MetricMatch]) -> None:
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
def sm_metrics(sm_contract: CheckContext) -> None:
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
