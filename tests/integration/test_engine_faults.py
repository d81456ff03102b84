"""Engine faults on the real engine: a container removed from outside the platform is named, never passed.

The container is removed by docker-py from the test (as `docker rm -f` would) at a point the test knows:
after the image printed its first step (training) or once SIGTERM has gone out (the grace period). No
sleeps: the log line and the synchronous stop() are the synchronisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.contract.stopping import _stopped_verdict
from pytest_sagemaker_contract.jobs import job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from .conftest_helpers import DetachedCheck, local_platform

IMAGES = Path(__file__).resolve().parents[1] / "images"

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingPlatform]:
    with local_platform(tmp_path_factory.mktemp("platform"), grace_s=60) as plat:
        yield plat


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "platform-probe")


def make_spec(image: str, prefix: str, mode: str) -> TrainingJobSpec:
    return parse_request(with_overrides(None, name=job_name(prefix), image=image, environment={"MODE": mode}))


def suite_for(platform: TrainingPlatform, check_id: str) -> DetachedCheck:
    """The check helper without a pytest item: enough for the verdict functions of the built-in checks."""
    return DetachedCheck(platform, check_id, "probe")


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


def assert_check_fails_naming_the_environment(
    suite: DetachedCheck, excinfo: pytest.ExceptionInfo[BaseException]
) -> None:
    message = str(excinfo.value)
    assert message.startswith(f"{suite.check_id} (§5): environment fault, not the image's: container sm-")
    assert "The run proves nothing about the image" in message
    log = Path(suite.note.log_path)
    assert log.is_file(), "the log named in the report must outlive the platform's work directory"
    assert suite.platform.workdir not in log.parents
    with contextlib.suppress(OSError):
        log.unlink()


def test_container_removed_while_training_is_an_engine_fault(
    platform: TrainingPlatform, probe: str, docker_client: docker.DockerClient
) -> None:
    job = platform.start(make_spec(probe, "fault-train", mode="ignore"))
    with job:
        assert job.wait_for_log(r"^step 1$", timeout=60) is not None
        (container,) = job.container_ids
        name = docker_client.api.inspect_container(container)["Name"].lstrip("/")
        docker_client.api.remove_container(container, force=True)
        result = job.wait(timeout=120)
    assert_named_fault(result, name, "training")
    assert "step 1" in result.logs.splitlines()  # the log up to the removal is kept
    suite = suite_for(platform, "SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert_check_fails_naming_the_environment(suite, excinfo)
    assert "AlgorithmError" not in str(excinfo.value)  # the image is not blamed


def test_container_removed_during_the_sigterm_grace_never_passes_sm_sig_term(
    platform: TrainingPlatform, probe: str, docker_client: docker.DockerClient
) -> None:
    """An image that ignores SIGTERM, removed by someone else within the grace: not 'exited after SIGTERM'."""
    job = platform.start(make_spec(probe, "fault-grace", mode="ignore"))
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
    suite = suite_for(platform, "SM-SIG-TERM")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        _stopped_verdict(suite, result, 60, "SIGTERM at log line 'step 1'")
    assert_check_fails_naming_the_environment(suite, excinfo)
    assert suite.note.message.startswith("environment fault, not the image's")  # no "exited … after SIGTERM"
    assert platform.engine.api.containers(all=True, filters={"label": f"{LABEL_RUN}={platform.run_id}"}) == []
