"""Helpers shared by the integration tests (not fixtures)."""

from __future__ import annotations

from typing import Any


def outcomes_by_check(report: dict[str, Any], image_index: int = 0) -> dict[str, tuple[str, str]]:
    """check id -> (outcome, message) from a --sm-report JSON document."""
    return {c["id"]: (c["outcome"], c["message"]) for c in report["images"][image_index]["checks"]}
