"""Interference from outside the platform is the environment's fault, never the image's pass or fail (issue 22).

Someone else's `docker kill -s TERM`, `docker restart` or `docker pause` of a training container, done by
docker-py from the test at a point the test knows (after a log line, or once the platform's SIGTERM has gone
out): the job fails as an engine fault naming what happened, and the check reports an environment fault.
No sleeps: log lines and the synchronous stop() are the synchronisation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.contract.stopping import _stopped_verdict
from pytest_sagemaker_contract.contract.suite import CheckNote, Suite
from pytest_sagemaker_contract.jobs import job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from .conftest_helpers import local_platform

IMAGES = Path(__file__).resolve().parents[1] / "images"

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingPlatform]:
    with local_platform(tmp_path_factory.mktemp("platform"), grace_s=60) as plat:
        yield plat


@pytest.fixture(scope="module")
def epochs(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "epochs")


def make_spec(image: str, prefix: str, **environment: str) -> TrainingJobSpec:
    return parse_request(with_overrides(None, name=job_name(prefix), image=image, environment=environment))


def suite_for(platform: TrainingPlatform, check_id: str) -> Suite:
    """The check helper without a pytest item: enough for the verdict functions of the built-in checks."""
    suite = object.__new__(Suite)
    suite.platform = platform
    suite.note = CheckNote(check_id, "§5", "epochs")
    return suite


def the_fault(result: TrainingJobResult, pattern: str) -> str:
    """The one engine fault, matching `pattern`, carried everywhere an environment fault must show."""
    assert result.TrainingJobStatus == "Failed", result.describe()
    assert len(result.engine_faults) == 1, result.engine_faults
    fault = result.engine_faults[0]
    assert re.fullmatch(pattern, fault), fault
    assert result.FailureReason == f"InternalServerError: {fault}"
    assert "AlgorithmError" not in (result.FailureReason or "")
    assert result.timeline.interference == [fault]
    assert result.timeline.as_dict()["interference"] == [fault]
    assert f"engine fault, not the image's: {fault}" in result.warnings
    return fault


def assert_check_reports_the_environment(suite: Suite, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    message = str(excinfo.value)
    assert message.startswith(f"{suite.check_id} (§5): environment fault, not the image's: container sm-"), message
    assert "from outside the platform" in message
    assert "The run proves nothing about the image" in message
    assert suite.note.message.startswith("environment fault, not the image's")
    Path(suite.note.log_path).unlink(missing_ok=True)


def test_outside_sigterm_while_training_never_passes_sm_run_default(
    platform: TrainingPlatform, epochs: str, docker_client: docker.DockerClient
) -> None:
    """The image saves and exits 0 on SIGTERM: without the platform's eye this was `Completed in 2 s`."""
    job = platform.start(make_spec(epochs, "outside-term", EPOCHS="30"))
    with job:
        assert job.wait_for_log(r"^epoch 2$", timeout=60) is not None
        (container,) = job.container_ids
        docker_client.api.kill(container, "SIGTERM")
        result = job.wait(timeout=120)
    assert result.hosts[0].exit_code == 0  # the image did what it should on SIGTERM
    assert result.timeline.sigterm_sent is None  # … but the platform never sent one
    the_fault(
        result,
        r"container sm-\S+ was sent SIGTERM from outside the platform at \d+\.\d s "
        r"\(docker kill, docker stop or docker restart\?\) while training",
    )
    assert any(line.startswith("SIGTERM: saving after ") for line in result.logs.splitlines())
    suite = suite_for(platform, "SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert_check_reports_the_environment(suite, excinfo)
    assert "sent SIGTERM from outside the platform" in str(excinfo.value)


def test_outside_restart_while_training_is_an_environment_fault(
    platform: TrainingPlatform, epochs: str, docker_client: docker.DockerClient
) -> None:
    """`docker restart`: SIGTERM, exit, start again. Whichever run the platform saw end, it is not the image's."""
    job = platform.start(make_spec(epochs, "outside-restart", EPOCHS="6"))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        (container,) = job.container_ids
        docker_client.api.restart(container, timeout=10)
        result = job.wait(timeout=120)
    the_fault(
        result,
        r"container sm-\S+ was (sent SIGTERM|stopped|restarted) from outside the platform at \d+\.\d s "
        r"\((docker kill, docker stop or docker restart|docker stop|docker restart)\?\) while training",
    )
    suite = suite_for(platform, "SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert_check_reports_the_environment(suite, excinfo)


def test_outside_pause_during_the_grace_is_not_blamed_on_the_handler(
    platform: TrainingPlatform, epochs: str, docker_client: docker.DockerClient
) -> None:
    """The handler needs 2 s of a 5-s grace; frozen by someone's `docker pause`, it is SIGKILLed at 5 s."""
    job = platform.start(make_spec(epochs, "outside-pause", EPOCHS="30", SAVE_S="2"))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        (container,) = job.container_ids
        job.stop(grace=5)  # SIGTERM has gone out when stop() returns
        assert job.wait_for_log(r"^SIGTERM: saving", timeout=30) is not None
        docker_client.api.pause(container)
        result = job.wait(timeout=120)
    assert result.killed, "the platform's SIGKILL at the end of the grace ended the frozen handler"
    fault = the_fault(
        result,
        r"container sm-\S+ was paused from outside the platform at \d+\.\d s \(docker pause\?\) "
        r"during the SIGTERM grace period for \d+\.\d s, until the platform's SIGKILL resumed it",
    )
    assert "saved" not in result.logs.splitlines()
    suite = suite_for(platform, "SM-SIG-TERM")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        _stopped_verdict(suite, result, 5, "SIGTERM at log line 'epoch 1'")
    assert_check_reports_the_environment(suite, excinfo)
    assert fault in str(excinfo.value)


def test_the_platforms_own_signals_are_not_interference(platform: TrainingPlatform, epochs: str) -> None:
    """Control: a run that completes, a StopTrainingJob the handler honours and one that ends in SIGKILL."""
    completed = platform.run(make_spec(epochs, "own-complete", EPOCHS="1"))
    assert completed.TrainingJobStatus == "Completed", completed.describe()
    job = platform.start(make_spec(epochs, "own-stop", EPOCHS="30"))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        job.stop(grace=30)
        stopped = job.wait(timeout=120)
    assert stopped.TrainingJobStatus == "Stopped", stopped.describe()
    job = platform.start(make_spec(epochs, "own-kill", EPOCHS="30", SAVE_S="30"))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        job.stop(grace=2)
        killed = job.wait(timeout=120)
    assert killed.TrainingJobStatus == "Stopped", killed.describe()
    assert killed.killed
    for result in (completed, stopped, killed):
        assert result.engine_faults == [], result.engine_faults
        assert result.timeline.interference == []
