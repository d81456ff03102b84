"""examples/toolkit-script-mode: AWS's real sagemaker-training toolkit under the whole suite (issue 12).

The verdicts must be SageMaker's. The toolkit trains under every invocation shape, with network isolation
(its hosts resolve their own names), and its script-mode metrics and model come through; but its `train`
is PID 1 without a SIGTERM handler and does not forward SIGTERM to the user's script
(aws/sagemaker-training-toolkit#125, #173), so a stopped job is SIGKILLed on SageMaker as here. The
Dockerfile.forwarding variant (an exec-form wrapper that forwards SIGTERM) passes the SIGTERM checks.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..helpers import EXAMPLES
from .conftest_helpers import run_checks

EXAMPLE = EXAMPLES / "toolkit-script-mode"
SHORT = (
    str(EXAMPLE),  # a directory without tests, so pyproject's testpaths add nothing
    f"--sm-job={EXAMPLE / 'job.json'}",
    f"--sm-channel=train={EXAMPLE / 'data'}",
    "--sm-grace=10",
    "--sm-stop-on-log=epoch 1/",
    "--sm-sigterm-hyperparameter=epochs=1000",
    "--sm-timeout=300",
)


@pytest.fixture(scope="module")
def toolkit(example_image: Callable[[str], str]) -> str:
    return example_image("toolkit-script-mode")


@pytest.fixture(scope="module")
def forwarding(example_image: Callable[[str], str]) -> str:
    return example_image("toolkit-script-mode/Dockerfile.forwarding")


def test_full_suite_gives_sagemakers_verdicts(pytester: pytest.Pytester, toolkit: str, no_leftovers: str) -> None:
    _result, checks = run_checks(pytester, toolkit, *SHORT)
    outcome = {check: verdict for check, (verdict, _message) in checks.items()}
    expected = {
        "SM-IMG-EXEC-FORM": "passed",  # no ENTRYPOINT: `train` is PID 1, as in AWS's framework images
        "SM-IMG-NO-TINI": "passed",
        "SM-IMG-TRAIN-ON-PATH": "passed",  # the toolkit's console script, /opt/venv/bin/train
        "SM-IMG-OPT-ML-EMPTY": "passed",  # /opt/ml/code is allowed, with a warning
        "SM-IMG-NO-DRIVER": "passed",
        "SM-RUN-DEFAULT": "passed",
        "SM-RUN-ENTRYPOINT": "passed",
        "SM-RUN-ARGUMENTS": "passed",
        "SM-RUN-BOTH": "passed",
        "SM-RUN-EXTERNAL-SCRIPT": "passed",
        "SM-OUT-MODEL": "passed",
        "SM-SIG-TERM": "failed",  # the toolkit does not forward SIGTERM: SIGKILLed on SageMaker too
        "SM-SIG-MAX-RUNTIME": "failed",  # the same stop, by MaxRuntimeInSeconds
        "SM-CKPT-RESUME": "skipped",  # the job has no CheckpointConfig
        "SM-SPOT-RESTART": "skipped",  # the same
        "SM-DATA-MODES": "passed",
        "SM-HOSTS-MULTI": "skipped",  # one host
        "SM-NET-ISOLATION": "passed",  # algo-1 resolves under isolation, so the toolkit starts the script
        "SM-GPU-VISIBLE": "skipped",  # ml.m5.large has no GPU
    }
    assert {check: outcome.get(check) for check in expected} == expected, checks
    others = {check: verdict for check, verdict in outcome.items() if check not in expected}
    assert "failed" not in others.values(), checks
    assert checks["SM-OUT-MODEL"][1].endswith("holds 1 file(s): model.json")
    for check in ("SM-SIG-TERM", "SM-SIG-MAX-RUNTIME"):
        message = checks[check][1]
        assert "killed with SIGKILL (exit code 137)" in message
        assert (
            "PID 1 is the sagemaker-training toolkit's `train` (/opt/venv/bin/python3 /opt/venv/bin/train)" in message
        )
        assert "train.py --epochs 1000" in message  # the user's entry point, from the process tree
        assert "does not forward SIGTERM" in message
        assert "handler never runs" in message
        assert "subprocess.Popen(['train'])" in message
        assert "checkpoints" in message


def test_forwarding_wrapper_passes_the_sigterm_checks(
    pytester: pytest.Pytester, forwarding: str, no_leftovers: str
) -> None:
    result, checks = run_checks(pytester, forwarding, *SHORT, "-k", "SM-SIG-TERM or SM-SIG-MAX-RUNTIME")
    result.assert_outcomes(passed=2)
    assert checks["SM-SIG-TERM"][1].endswith(
        "exit code 0; PID 1 (python3 /usr/local/bin/forward-sigterm.py train) catches SIGTERM; model saved: model.json"
    ), checks
    assert "Stopped/MaxRuntimeExceeded" in checks["SM-SIG-MAX-RUNTIME"][1]
