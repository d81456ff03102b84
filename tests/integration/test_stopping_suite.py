"""SM-SIG-* and SM-CKPT-RESUME on real containers and real signals: verdicts and diagnoses."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest_helpers import run_checks

REPO = Path(__file__).resolve().parents[2]
KMEANS = REPO / "examples" / "kmeans"
IMAGES = REPO / "tests" / "images"


def test_handler_that_saves_in_time_passes(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image("sigterm/python-good")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG", "--sm-grace=5", "--sm-stop-after=1.5")
    result.assert_outcomes(passed=2)
    assert checks["SM-SIG-TERM"][1].startswith("exited ")
    assert "model saved: model.json" in checks["SM-SIG-TERM"][1]
    assert checks["SM-SIG-MAX-RUNTIME"][1].startswith("Stopped/MaxRuntimeExceeded: exited")


def test_pid1_without_handler_is_killed_and_diagnosed(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image("sigterm/python-bad")
    started = time.monotonic()
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=2", "--sm-stop-after=1")
    assert time.monotonic() - started < 60
    result.assert_outcomes(failed=1)
    message = checks["SM-SIG-TERM"][1]
    assert "still running 2 s after SIGTERM, killed with SIGKILL (exit code 137)" in message
    assert "PID 1 (python3 /opt/program/train.py train) has no SIGTERM handler" in message
    assert "signal.signal(signal.SIGTERM, handler)" in message
    result.stdout.fnmatch_lines(["*process tree at SIGTERM*", "*python3 /opt/program/train.py train"])


def test_shell_form_entrypoint_names_the_shell(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("sigterm/shell-bad")
    result, checks = run_checks(
        pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=2", "--sm-stop-after=1", "--sm-hyperparameter=seconds=20"
    )
    result.assert_outcomes(failed=1)
    assert "PID 1 is a shell (/bin/sh /opt/program/train.sh train) with no SIGTERM trap" in checks["SM-SIG-TERM"][1]


def test_slow_handler_names_the_grace(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image(IMAGES / "slow-handler")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=3", "--sm-stop-after=1.5")
    result.assert_outcomes(failed=1)
    message = checks["SM-SIG-TERM"][1]
    assert "still running 3 s after SIGTERM" in message
    assert "handles SIGTERM (last line after SIGTERM: 'SIGTERM: saving a big model')" in message
    assert "took longer than the grace period" in message
    assert "(this run used --sm-grace 3; SageMaker gives 120 s)" in message


def test_slow_handler_passes_with_a_long_enough_grace(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image(IMAGES / "slow-handler")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=20", "--sm-stop-after=1.5")
    result.assert_outcomes(passed=1)
    seconds = float(checks["SM-SIG-TERM"][1].split()[1])
    assert 7.0 <= seconds <= 12.0


def test_handler_that_forgets_the_model_fails(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image(IMAGES / "no-save-handler")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=5", "--sm-stop-after=1.5")
    result.assert_outcomes(failed=1)
    message = checks["SM-SIG-TERM"][1]
    assert "exited 0." in message
    assert "the model directory /opt/ml/model was empty" in message
    assert "Save the model to /opt/ml/model in the SIGTERM handler" in message


def test_training_that_ends_before_the_trigger_is_skipped_with_a_hint(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image("sigterm/python-good")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG", "--sm-stop-after=30", "--sm-hyperparameter=epochs=1")
    result.assert_outcomes(skipped=2)
    assert "before the SIGTERM trigger" in checks["SM-SIG-TERM"][1]
    assert "--sm-sigterm-hyperparameter" in checks["SM-SIG-TERM"][1]


def test_stop_on_log_trigger(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("sigterm/python-good")
    result, _checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-stop-on-log=epoch 2/", "--sm-grace=5")
    result.assert_outcomes(passed=1)


def test_checkpoint_resume_on_kmeans(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("kmeans")
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-CKPT-RESUME",
        f"--sm-job={KMEANS / 'job.json'}",
        f"--sm-channel=train={KMEANS / 'data'}",
        "--sm-checkpoints",
        "--sm-stop-after=1.5",
        "--sm-grace=10",
        "--sm-resume-log=resuming from checkpoint after epoch [0-9]+",
    )
    result.assert_outcomes(passed=1)
    assert "restored; the resumed run Completed" in checks["SM-CKPT-RESUME"][1]


def test_checkpoint_resume_without_checkpoint_config_is_skipped(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image("sigterm/python-good")
    result, checks = run_checks(pytester, image, "-k", "SM-CKPT-RESUME")
    result.assert_outcomes(skipped=1)
    assert "--sm-checkpoints" in checks["SM-CKPT-RESUME"][1]
