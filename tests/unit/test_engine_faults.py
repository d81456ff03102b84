"""Engine faults without Docker: a container removed or killed from outside is named, never the image's fault."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from pytest_sagemaker_contract.platform.job_plan import JobState
from pytest_sagemaker_contract.platform.job_run import outside_kill as job_outside_kill
from pytest_sagemaker_contract.platform.result import (
    INTERNAL_ERROR_PREFIX,
    MAX_FAILURE_REASON,
    HostResult,
    JobStatus,
    Timeline,
    decide_job_status,
)

REMOVED = "container sm-x-algo-1-abc was removed from outside the platform (docker rm?) while training"


def host(name: str = "algo-1", code: int | None = 0, **kw: Any) -> HostResult:
    return HostResult(host=name, container_id="c", exit_code=code, **kw)


def test_an_engine_fault_fails_the_job_as_an_internal_server_error() -> None:
    verdict = decide_job_status([host(code=137, engine_fault=REMOVED)])
    assert verdict == JobStatus("Failed", "Failed", f"InternalServerError: {REMOVED}", 137)


def test_an_engine_fault_wins_over_the_stop_it_interrupted() -> None:
    verdict = decide_job_status([host(code=137, engine_fault=REMOVED)], stop_reason="Stopped")
    assert (verdict.TrainingJobStatus, verdict.SecondaryStatus) == ("Failed", "Failed")
    assert verdict.FailureReason is not None
    assert verdict.FailureReason.startswith(INTERNAL_ERROR_PREFIX)


def test_an_engine_fault_wins_over_the_exit_codes_of_other_hosts() -> None:
    hosts = [host("algo-1", 1, failure_text="boom"), host("algo-2", None, engine_fault=REMOVED)]
    verdict = decide_job_status(hosts, first_failure="algo-1")
    assert verdict == JobStatus("Failed", "Failed", f"InternalServerError: {REMOVED}", None)


def test_a_staging_error_still_comes_first() -> None:
    verdict = decide_job_status([host(code=None, engine_fault=REMOVED)], client_error="ClientError: no data")
    assert verdict == JobStatus("Failed", "Failed", "ClientError: no data", None)


def test_a_long_engine_fault_fits_failure_reason() -> None:
    reason = decide_job_status([host(code=137, engine_fault="x" * 5000)]).FailureReason
    assert reason is not None
    assert len(reason) == MAX_FAILURE_REASON


def test_no_fault_keeps_the_usual_rules() -> None:
    assert decide_job_status([host(code=137)]).FailureReason == (
        "AlgorithmError: See job logs for more information, exit code: 137"
    )
    assert decide_job_status([host(code=137)], stop_reason="Stopped").TrainingJobStatus == "Stopped"


class _Engine:
    def __init__(self, state: dict[str, Any] | None) -> None:
        self._state = state

    def state(self, container_id: str) -> dict[str, Any]:
        if self._state is None:
            raise docker.errors.NotFound("No such container")
        return self._state


def outside_kill(
    code: int, state: dict[str, Any] | None, *, sigkill_sent: bool = False, stop_reason: str | None = None
) -> str | None:
    phase = JobState(timeline=Timeline(), stop_reason=stop_reason).phase()
    run = SimpleNamespace(container_id="c", name="sm-x-algo-1-abc", sigkill_sent=sigkill_sent)
    return job_outside_kill(_Engine(state), run, code, phase)  # type: ignore[arg-type]


def test_a_container_gone_after_its_exit_was_removed_from_outside() -> None:
    fault = outside_kill(137, None, stop_reason="Stopped")
    assert fault == (
        "container sm-x-algo-1-abc was removed from outside the platform (docker rm -f?) while the SIGTERM grace period"
    )


@pytest.mark.parametrize("status", ["removing", "dead"])
def test_a_container_being_removed_was_removed_from_outside(status: str) -> None:
    assert "removed from outside" in (outside_kill(137, {"Status": status}) or "")


def test_sigkill_the_platform_never_sent_is_from_outside() -> None:
    fault = outside_kill(137, {"Status": "exited", "OOMKilled": False})
    assert fault is not None
    assert "killed with SIGKILL from outside the platform" in fault
    assert "while training" in fault


@pytest.mark.parametrize(
    ("code", "state", "sigkill_sent"),
    [
        (137, {"Status": "exited", "OOMKilled": False}, True),  # the platform's own SIGKILL
        (137, {"Status": "exited", "OOMKilled": True}, False),  # the memory limit: OutOfMemoryError
        (1, {"Status": "exited", "OOMKilled": False}, False),  # the image's own failure
        (0, {"Status": "exited"}, False),
    ],
)
def test_the_platform_s_own_kills_and_the_image_s_exits_are_no_fault(
    code: int, state: dict[str, Any], sigkill_sent: bool
) -> None:
    assert outside_kill(code, state, sigkill_sent=sigkill_sent) is None
