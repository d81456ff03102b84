"""Helpers shared by the integration tests (not fixtures)."""

from __future__ import annotations

import json
from typing import Any

import pytest


def outcomes_by_check(report: dict[str, Any], image_index: int = 0) -> dict[str, tuple[str, str]]:
    """check id -> (outcome, message) from a --sm-report JSON document."""
    return {c["id"]: (c["outcome"], c["message"]) for c in report["images"][image_index]["checks"]}


def run_checks(
    pytester: pytest.Pytester, image: str, *args: str
) -> tuple[pytest.RunResult, dict[str, tuple[str, str]]]:
    """`pytest --sm-image IMAGE ARGS` in a subprocess; its result and the JSON report's verdicts."""
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--sm-image={image}", f"--sm-report={report}", *args, timeout=600
    )
    return result, outcomes_by_check(json.loads(report.read_text()))
