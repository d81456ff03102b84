"""Managed spot interruptions and RetryStrategy on real containers (contract §11, issue 18 item 4).

An interruption restarts the same job in fresh containers: the statuses go Interrupted → Starting →
Downloading → Training, checkpoints are restored again and /opt/ml/model starts empty. MaxWaitTimeInSeconds
covers every attempt; RetryStrategy restarts a job after an engine fault (a `docker kill` from outside).
SIGTERM and the outside kill go out on log lines the image prints, never after a fixed time.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_sagemaker_contract.errors import PlatformError
from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES, local_platform, run_checks

CHECKPOINTING = IMAGES / "checkpoint-resume"


@pytest.fixture
def image(example_image: Callable[[str | Path], str]) -> str:
    return example_image(CHECKPOINTING)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[TrainingPlatform]:
    with local_platform(tmp_path, grace_s=10) as plat:
        yield plat


def _request(image: str, epochs: int, **extra: Any) -> dict[str, Any]:
    """A checkpointing job on `image` (fresh checkpoint URI) with `extra` top-level fields."""
    uri = f"s3://{CHANNEL_BUCKET}/checkpoints/{uuid.uuid4().hex[:8]}"
    req = with_overrides(
        None, name=job_name("spot"), image=image, hyperparameters={"epochs": str(epochs)}, checkpoint_s3_uri=uri
    )
    req.update(extra)
    return req


def _spot(req: dict[str, Any], max_s: int) -> dict[str, Any]:
    req["EnableManagedSpotTraining"] = True
    req["StoppingCondition"] = {"MaxRuntimeInSeconds": max_s, "MaxWaitTimeInSeconds": max_s}
    return req


def test_interruption_restarts_the_same_job_with_checkpoints_and_an_empty_model_dir(
    platform: TrainingPlatform, image: str, no_leftovers: None
) -> None:
    job = platform.start(parse_request(_spot(_request(image, epochs=5), 3600)))
    assert job.wait_for_log("^epoch 2$", timeout=60)
    assert job.interrupt(grace=10)
    result = job.wait(120)
    statuses = [t["Status"] for t in result.SecondaryStatusTransitions]
    assert statuses == [
        "Starting",
        "Downloading",
        "Training",
        "Interrupted",
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    transitions = result.SecondaryStatusTransitions
    assert all(t["EndTime"] >= t["StartTime"] for t in transitions)
    assert all(a["EndTime"] == b["StartTime"] for a, b in itertools.pairwise(transitions))
    assert result.describe()["SecondaryStatusTransitions"] == transitions
    (restart,) = result.restarts
    assert (restart.attempt, restart.cause) == (1, "Interrupted")
    assert restart.checkpoints_saved == restart.restored == ["epoch"]
    assert restart.read == ["epoch"]
    # The first attempt saved partial.txt on SIGTERM; the restarted containers start with an empty model dir.
    assert result.model_files == ["model.txt"]
    assert "resuming from checkpoint after epoch 2" in result.logs
    assert result.logs.count("files in /opt/ml/model: 0") == 2


def test_interrupting_a_job_that_is_not_spot_is_refused(platform: TrainingPlatform, image: str) -> None:
    job = platform.start(parse_request(_request(image, epochs=30)))
    with job:
        with pytest.raises(PlatformError, match="not a managed spot job: only EnableManagedSpotTraining"):
            job.interrupt()
        job.stop(grace=5)
        assert job.wait(60).restarts == []


def test_max_wait_covers_every_attempt(platform: TrainingPlatform, image: str, no_leftovers: None) -> None:
    # MaxWait == MaxRuntime: the time spent on the interruption and the restart is not training, so the wait runs
    # out before the runtime does, in whichever attempt it falls.
    job = platform.start(parse_request(_spot(_request(image, epochs=120), 20)))
    assert job.wait_for_log("^epoch 1$", timeout=60)
    assert job.interrupt(grace=10)
    result = job.wait(120)
    assert (result.TrainingJobStatus, result.SecondaryStatus) == ("Stopped", "MaxWaitTimeExceeded")
    assert result.FailureReason is None
    statuses = [t["Status"] for t in result.SecondaryStatusTransitions]
    assert statuses[3] == "Interrupted"
    assert statuses[-1] == "MaxWaitTimeExceeded"
    assert [r.cause for r in result.restarts] == ["Interrupted"]
    trained = (result.restarts[0].timeline.training_seconds or 0) + (result.timeline.training_seconds or 0)
    assert trained < 20


def test_retry_strategy_restarts_after_an_engine_fault(
    platform: TrainingPlatform, image: str, docker_client: docker.DockerClient, no_leftovers: None
) -> None:
    job = platform.start(parse_request(_request(image, epochs=4, RetryStrategy={"MaximumRetryAttempts": 1})))
    assert job.wait_for_log("^epoch 1$", timeout=60)
    docker_client.api.kill(job.container_ids[0], "SIGKILL")  # from outside: an engine fault (InternalServerError)
    result = job.wait(120)
    assert result.TrainingJobStatus == "Completed", result.FailureReason
    (restart,) = result.restarts
    assert restart.cause == "InternalServerError"
    assert "killed with SIGKILL from outside the platform" in restart.reason
    assert any("RetryStrategy restarted the job (retry 1 of 1)" in w for w in result.warnings)
    assert result.engine_faults == []
    assert [t["Status"] for t in result.SecondaryStatusTransitions].count("Starting") == 2


def test_without_retries_left_an_engine_fault_fails_the_job(
    platform: TrainingPlatform, image: str, docker_client: docker.DockerClient
) -> None:
    job = platform.start(parse_request(_request(image, epochs=30)))
    assert job.wait_for_log("^epoch 1$", timeout=60)
    docker_client.api.kill(job.container_ids[0], "SIGKILL")
    result = job.wait(120)
    assert (result.TrainingJobStatus, result.restarts) == ("Failed", [])
    assert (result.FailureReason or "").startswith("InternalServerError: ")


def test_spot_restart_check_passes_an_image_that_resumes(pytester: pytest.Pytester, image: str) -> None:
    result, checks = run_checks(
        pytester, image, "-k", "SM-SPOT-RESTART", "--sm-checkpoints", "--sm-stop-on-log=^epoch 2$", "--sm-grace=10"
    )
    result.assert_outcomes(passed=1)
    message = checks["SM-SPOT-RESTART"][1]
    assert "Interrupted → Starting → Downloading → Training" in message
    assert "1 checkpoint file(s) synced, 1 restored, it read 1 of them (epoch); model saved: model.txt" in message


def test_spot_restart_check_fails_an_image_that_starts_over(pytester: pytest.Pytester, image: str) -> None:
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-SPOT-RESTART",
        "--sm-checkpoints",
        "--sm-stop-on-log=^epoch 2$",
        "--sm-grace=10",
        "--sm-hyperparameter=resume=no",
    )
    result.assert_outcomes(failed=1)
    message = checks["SM-SPOT-RESTART"][1]
    assert "the restarted run never read the 1 checkpoint file(s) restored into /opt/ml/checkpoints (epoch)" in message
    assert "it started over instead of resuming" in message
    assert "Fix: on start, load the newest checkpoint from /opt/ml/checkpoints" in message
    result.stdout.fnmatch_lines(["*SecondaryStatusTransitions*", "*s  Interrupted * instances were interrupted"])


def test_spot_restart_check_fails_a_restarted_run_that_outlasts_the_timeout(
    pytester: pytest.Pytester, image: str
) -> None:
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-SPOT-RESTART",
        "--sm-checkpoints",
        "--sm-stop-on-log=^epoch 1$",
        "--sm-grace=5",
        "--sm-timeout=5",
        "--sm-sigterm-hyperparameter=epochs=300",
    )
    result.assert_outcomes(failed=1)
    message = checks["SM-SPOT-RESTART"][1]
    assert "the job interrupted at log line 'epoch 1' had not completed 10 s later" in message
    assert "it keeps the SIGTERM runs' hyperparameters epochs=300" in message


def test_spot_restart_without_checkpoint_config_is_a_structural_skip(pytester: pytest.Pytester, image: str) -> None:
    result, checks = run_checks(pytester, image, "-k", "SM-SPOT-RESTART")
    result.assert_outcomes(skipped=1)
    assert "no CheckpointConfig" in checks["SM-SPOT-RESTART"][1]
    assert "--sm-checkpoints" in checks["SM-SPOT-RESTART"][1]
