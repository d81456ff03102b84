"""SM-SIG-* and SM-CKPT-RESUME on real containers and real signals: verdicts and diagnoses.

SIGTERM goes out on a log line the image prints once its handler is installed (--sm-stop-on-log), not
after a fixed time: on a busy machine the image may not have installed its handler 1.5 s after start,
and PID 1 drops a SIGTERM it has no handler for. Only SM-SIG-MAX-RUNTIME is timed by nature; it gets a
limit (--sm-stop-after 5) far past the interpreter's start-up and far short of the training's 15 s.
Durations are never asserted from above; graces are generous where the handler is meant to make it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..helpers import KMEANS_JOB_ARGS
from .conftest_helpers import IMAGES, run_checks


def test_handler_that_saves_in_time_passes(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image("sigterm/python-good")
    result, checks = run_checks(
        pytester, image, "-k", "SM-SIG", "--sm-grace=30", "--sm-stop-on-log=^epoch 1/", "--sm-stop-after=5"
    )
    result.assert_outcomes(passed=2)
    assert checks["SM-SIG-TERM"][1].startswith("exited ")
    assert "model saved: model.json" in checks["SM-SIG-TERM"][1]
    assert checks["SM-SIG-MAX-RUNTIME"][1].startswith("Stopped/MaxRuntimeExceeded: exited")


def test_pid1_without_handler_is_killed_and_diagnosed(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image("sigterm/python-bad")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=2", "--sm-stop-on-log=^epoch 1/")
    result.assert_outcomes(failed=1)
    message = checks["SM-SIG-TERM"][1]
    assert "still running 2 s after SIGTERM, killed with SIGKILL (exit code 137)" in message
    assert "PID 1 (python3 /opt/program/train.py train) has no SIGTERM handler" in message
    assert "signal.signal(signal.SIGTERM, handler)" in message
    result.stdout.fnmatch_lines(["*process tree at SIGTERM*", "*python3 /opt/program/train.py train"])


def test_shell_form_entrypoint_names_the_shell(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("sigterm/shell-bad")
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-SIG-TERM",
        "--sm-grace=2",
        "--sm-stop-on-log=^step 1/",
        "--sm-hyperparameter=seconds=20",
    )
    result.assert_outcomes(failed=1)
    assert "PID 1 is a shell (/bin/sh /opt/program/train.sh train) with no SIGTERM trap" in checks["SM-SIG-TERM"][1]


def test_slow_handler_names_the_grace(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image(IMAGES / "slow-handler")
    # The handler needs eight 1 s sleeps, so a 3 s grace can never be enough, however fast the machine.
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=3", "--sm-stop-on-log=^step 1$")
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
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=120", "--sm-stop-on-log=^step 1$")
    result.assert_outcomes(passed=1)  # exited within the grace: no SIGKILL
    message = checks["SM-SIG-TERM"][1]
    assert (
        "(grace 120 s), exit code 0; PID 1 (/bin/sh /opt/program/train.sh train) catches SIGTERM; model saved: "
        "model.txt" in message
    )
    # A lower bound only: the handler's eight 1 s sleeps ran to the end before the exit (load only adds).
    assert float(message.split()[1]) >= 7.9


def test_handler_that_forgets_the_model_fails(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image(IMAGES / "no-save-handler")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-grace=30", "--sm-stop-on-log=^step 1$")
    result.assert_outcomes(failed=1)
    message = checks["SM-SIG-TERM"][1]
    assert "exited 0." in message
    assert "the model directory /opt/ml/model was empty" in message
    assert "Save the model to /opt/ml/model in the SIGTERM handler" in message


def test_training_that_ends_before_the_trigger_is_skipped_with_a_hint(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image("sigterm/python-good")
    result, checks = run_checks(pytester, image, "-k", "SM-SIG", "--sm-stop-after=120", "--sm-hyperparameter=epochs=1")
    result.assert_outcomes(skipped=2)
    assert "before the SIGTERM trigger" in checks["SM-SIG-TERM"][1]
    assert "--sm-sigterm-hyperparameter" in checks["SM-SIG-TERM"][1]


def test_stop_on_log_trigger(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("sigterm/python-good")
    result, _checks = run_checks(pytester, image, "-k", "SM-SIG-TERM", "--sm-stop-on-log=epoch 2/", "--sm-grace=30")
    result.assert_outcomes(passed=1)


def test_checkpoint_resume_on_kmeans(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("kmeans")
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-CKPT-RESUME",
        *KMEANS_JOB_ARGS,
        "--sm-checkpoints",
        "--sm-stop-on-log=^epoch 2/",  # epoch 1's checkpoint is written by then
        "--sm-grace=30",
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
