"""SM-METRICS and the ContainerEntrypoint-only shape through the plugin: `pytest --sm-image ...` in a subprocess."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from ..helpers import KMEANS_JOB_ARGS
from .conftest_helpers import IMAGES, KMEANS, run_checks


def test_kmeans_metrics_are_read_from_the_log(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    """examples/kmeans prints `epoch N/15 inertia=X`; its job's `inertia=([0-9.]+)` reads one value per epoch."""
    image = example_image("kmeans")
    junit = pytester.path / "junit.xml"
    result, checks = run_checks(
        pytester,
        image,
        *KMEANS_JOB_ARGS,
        f"--junitxml={junit}",
        "-k",
        "SM-METRICS",
    )
    result.assert_outcomes(passed=1)
    assert checks["SM-METRICS"][0] == "passed"
    assert checks["SM-METRICS"][1].startswith("1 metric(s) read from the log: inertia=")
    entry = next(c for c in json.loads((pytester.path / "report.json").read_text())["images"][0]["checks"])
    series = entry["metrics"]["inertia"]
    assert len(series) == 15
    assert all(isinstance(v, float) and v >= 0 for v in series)
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert float(props["sm_metric_inertia"]) == series[-1]


def test_metrics_skipped_without_definitions_and_failing_regex_named(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image("kmeans")
    job = json.loads((KMEANS / "job.json").read_text())
    job["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "Inertia", "Regex": "inertia: ([0-9.]+)"}]
    path = pytester.path / "job.json"
    path.write_text(json.dumps(job))
    result, checks = run_checks(
        pytester, image, f"--sm-job={path}", f"--sm-channel=train={KMEANS / 'data'}", "-k", "SM-METRICS"
    )
    result.assert_outcomes(failed=1)
    message = checks["SM-METRICS"][1]
    assert "Regex 'inertia: ([0-9.]+)' matched no log line" in message
    assert "log lines that mention it: epoch 1/15 inertia=" in message

    result, checks = run_checks(pytester, image, "-k", "SM-METRICS")
    result.assert_outcomes(skipped=1)
    assert "no AlgorithmSpecification.MetricDefinitions" in checks["SM-METRICS"][1]


def test_entrypoint_only_passes_no_train_argument(
    pytester: pytest.Pytester, example_image: Callable[[str | Path], str], no_leftovers: None
) -> None:
    """An image that insists on argv `train` trains as `docker run IMAGE train` but not under ContainerEntrypoint
    alone, which SageMaker starts with no arguments: the failure names the argument and both fixes."""
    image = example_image(IMAGES / "needs-train-arg")
    result, checks = run_checks(pytester, image, "-k", "SM-RUN-DEFAULT or SM-RUN-ENTRYPOINT")
    result.assert_outcomes(passed=1, failed=1)
    assert checks["SM-RUN-DEFAULT"][0] == "passed"
    outcome, message = checks["SM-RUN-ENTRYPOINT"]
    assert outcome == "failed"
    assert message.startswith("ContainerEntrypoint ['/bin/sh', '/opt/program/train.sh']: TrainingJobStatus Failed")
    assert "the program needs the `train` argument" in message
    assert 'don\'t require argv "train"' in message
    assert 'send ContainerArguments ["train"] together with the ContainerEntrypoint' in message
