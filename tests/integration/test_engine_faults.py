"""Engine faults on the real engine: a container removed from outside the platform is named, never passed.

The container is removed by docker-py from the test (as `docker rm -f` would) at a point the test knows:
after the image printed its first step (training) or once SIGTERM has gone out (the grace period). No
sleeps: the log line and the synchronous stop() are the synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.contract import CheckContext
from pytest_sagemaker_contract.contract.stopping import _stopped_verdict
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform

from .conftest_helpers import IMAGES, assert_environment_fault, job_leftovers, job_spec

pytestmark = [pytest.mark.usefixtures("no_leftovers"), pytest.mark.local_platform(grace_s=60)]


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "platform-probe")


def assert_named_fault(result: TrainingJobResult, container: str, phase: str) -> None:
    assert result.TrainingJobStatus == "Failed"
    assert len(result.engine_faults) == 1
    fault = result.engine_faults[0]
    assert fault.startswith(f"container {container} was removed from outside the platform"), fault
    assert fault.endswith(f"while {phase}"), fault
    assert result.FailureReason == f"InternalServerError: {fault}"
    assert result.hosts[0].engine_fault == fault
    assert f"engine fault, not the image's: {fault}" in result.warnings
    assert not result.killed  # the platform sent no SIGKILL: the removal did


def test_container_removed_while_training_is_an_engine_fault(
    platform: TrainingPlatform,
    probe: str,
    docker_client: docker.DockerClient,
    contract_check: Callable[[str], CheckContext],
) -> None:
    job = platform.start(job_spec(probe, "fault-train", environment={"MODE": "ignore"}))
    with job:
        assert job.wait_for_log(r"^step 1$", timeout=60) is not None
        (container,) = job.container_ids
        name = docker_client.api.inspect_container(container)["Name"].lstrip("/")
        docker_client.api.remove_container(container, force=True)
        result = job.wait(timeout=120)
    assert_named_fault(result, name, "training")
    assert "step 1" in result.logs.splitlines()  # the log up to the removal is kept
    suite = contract_check("SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert_environment_fault(suite, excinfo)
    assert "AlgorithmError" not in str(excinfo.value)  # the image is not blamed


def test_container_removed_during_the_sigterm_grace_never_passes_sm_sig_term(
    platform: TrainingPlatform,
    probe: str,
    docker_client: docker.DockerClient,
    contract_check: Callable[[str], CheckContext],
) -> None:
    """An image that ignores SIGTERM, removed by someone else within the grace: not 'exited after SIGTERM'."""
    job = platform.start(job_spec(probe, "fault-grace", environment={"MODE": "ignore"}))
    with job:
        assert job.wait_for_log(r"^step 1$", timeout=60) is not None
        (container,) = job.container_ids
        name = docker_client.api.inspect_container(container)["Name"].lstrip("/")
        job.stop(grace=60)  # SIGTERM has gone out when stop() returns; SIGKILL is 60 s away
        docker_client.api.remove_container(container, force=True)
        result = job.wait(timeout=120)
    assert result.timeline.sigterm_sent is not None
    assert result.timeline.sigkill_sent is None
    assert_named_fault(result, name, "the SIGTERM grace period")
    suite = contract_check("SM-SIG-TERM")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        _stopped_verdict(suite, result, 60, "SIGTERM at log line 'step 1'")
    assert_environment_fault(suite, excinfo)
    assert suite.note.message.startswith("environment fault, not the image's")  # no "exited … after SIGTERM"
    assert job_leftovers(platform) == []
