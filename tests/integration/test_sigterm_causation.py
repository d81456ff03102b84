"""A stop verdict needs evidence that SIGTERM ended the run, not a training that happened to end in the grace.

Each image saves its model before it trains and trains for 8 s, far inside a 30 s grace: before the
causation rule, all of them passed SM-SIG-TERM and SM-SIG-MAX-RUNTIME. On SageMaker, where a real run
outlasts the grace, only the one whose trainer dies of the forwarded SIGTERM stops in time. Every image
gets the same verdict under an early and a late trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest_helpers import IMAGES, run_checks

#: image → (hyperparameter for an 8 s SIGTERM run, fast and slow log triggers, expected outcome, words)
CASES = {
    "sigterm-pid1-shell": ("steps=8", ("^step 1$", "^step 4$"), "failed", "PID 1 (/bin/sh /opt/program/train.sh"),
    "sigterm-tini-ignores": ("steps=8", ("^step 1$", "^step 4$"), "failed", "which ignores it"),
    "sigterm-tini-dies": ("steps=8", ("^step 1$", "^step 4$"), "passed", "which dies of it"),
    "sigterm/python-bad": ("epochs=16", ("^epoch 1/", "^epoch 8/"), "failed", "has no SIGTERM handler"),
}


@pytest.mark.parametrize("speed", ["fast", "slow"])
@pytest.mark.parametrize("name", list(CASES))
def test_stop_verdicts_need_the_signal_to_act(
    pytester: pytest.Pytester, example_image: Callable[[str | Path], str], name: str, speed: str
) -> None:
    hyperparameter, triggers, expected, words = CASES[name]
    image = example_image(name if "/" in name else IMAGES / name)
    trigger = triggers[0] if speed == "fast" else triggers[1]
    stop_after = "2" if speed == "fast" else "4"
    _, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-SIG",
        "--sm-grace=30",
        f"--sm-sigterm-hyperparameter={hyperparameter}",
        f"--sm-stop-on-log={trigger}",
        f"--sm-stop-after={stop_after}",
    )
    for check_id in ("SM-SIG-TERM", "SM-SIG-MAX-RUNTIME"):
        outcome, message = checks[check_id]
        assert outcome == expected, (check_id, message)
        assert words in message, message
        if expected == "failed":
            assert "SIGTERM had no effect" in message
            assert "ended on its own" in message
            assert "SIGKILLs it" in message
            assert "model directory" not in message


def test_strict_fails_untested_stop_checks_and_keeps_structural_skips(
    pytester: pytest.Pytester, example_image: Callable[[str | Path], str]
) -> None:
    """Training that ends before the trigger leaves SM-SIG-TERM untested: visible without --sm-strict, a failure
    with it. A job without MetricDefinitions has nothing for SM-METRICS to test: a skip either way."""
    image = example_image(IMAGES / "sigterm-tini-dies")
    args = ("-k", "SM-SIG-TERM or SM-METRICS", "--sm-sigterm-hyperparameter=steps=1", "--sm-stop-on-log=^never$")
    result, checks = run_checks(pytester, image, *args)
    assert result.ret == 0
    assert checks["SM-SIG-TERM"][0] == "skipped"
    result.stdout.fnmatch_lines(["*NOT TESTED (1)*", "*SM-SIG-TERM: training finished in*"])
    assert checks["SM-METRICS"][0] == "skipped"

    result, checks = run_checks(pytester, image, *args, "--sm-strict")
    assert result.ret == 1
    assert checks["SM-SIG-TERM"][0] == "failed"
    assert checks["SM-SIG-TERM"][1].startswith("not tested (--sm-strict): training finished in")
    assert checks["SM-METRICS"][0] == "skipped"
