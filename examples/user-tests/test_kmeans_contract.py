"""A team's own tests for the kmeans image, on the same local SageMaker platform the contract suite uses.

Run them against the example image:

    pytest examples/user-tests --sm-image $(python examples/build.py kmeans)

`--sm-image` (or `sm_image` in the ini file) picks the image; `training_job` builds jobs in SageMaker's
own terms; results read like DescribeTrainingJob.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[1] / "kmeans" / "data"

pytestmark = pytest.mark.sagemaker_job(
    channels={"train": DATA}, hyperparameters={"k": "3", "epochs": "4", "seconds_per_epoch": "0"}
)


def test_trains_and_saves_three_centroids(training_job: Any, tmp_path: Path) -> None:
    result = training_job().run()
    assert result.TrainingJobStatus == "Completed", result.FailureReason
    assert result.model_files == ["model.json"]
    model = json.loads((result.extract_model(tmp_path) / "model.json").read_text())
    assert len(model["centroids"]) == 3
    assert result.describe()["ModelArtifacts"]["S3ModelArtifacts"].endswith("/output/model.tar.gz")


def test_a_bad_hyperparameter_fails_with_a_reason(training_job: Any) -> None:
    result = training_job(hyperparameters={"k": "three"}).run()
    assert result.TrainingJobStatus == "Failed"
    assert result.FailureReason.startswith("AlgorithmError: ")
    assert "k" in result.FailureReason
    assert result.FailureReason.endswith(", exit code: 1")


@pytest.mark.sagemaker_job(hyperparameters={"epochs": "1000", "seconds_per_epoch": "0.2"})
def test_sigterm_at_epoch_three_leaves_a_resumable_checkpoint(training_job: Any, sagemaker_s3: Any) -> None:
    uri = "s3://team-bucket/kmeans/checkpoints/run-1"
    with training_job(checkpoint_s3_uri=uri).start() as job:
        assert job.wait_for_log(r"epoch 3/", timeout=60), job.logs()
        job.stop(grace=10)
        stopped = job.wait(60)
    assert stopped.TrainingJobStatus == "Stopped"
    assert not stopped.killed
    keys = [o["Key"] for o in sagemaker_s3.list_objects_v2(Bucket="team-bucket").get("Contents", [])]
    assert "kmeans/checkpoints/run-1/state.json" in keys
    resumed = training_job(checkpoint_s3_uri=uri, hyperparameters={"epochs": "5"}).run()
    assert resumed.TrainingJobStatus == "Completed"
    assert "resuming from checkpoint" in resumed.logs
