"""CreateTrainingJob requests as users' own AWS code writes them, for the `sm-contract serve` tests.

Standard library only: the client tests copy this file into their pytester folder, where the users'
test files import it as `training_requests`.
"""

from __future__ import annotations

from typing import Any

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def training_request(name: str, image: str, output_path: str, **extra: Any) -> dict[str, Any]:
    """A minimal valid request (one ml.m5.large, File mode, 300 s) with `extra`'s top-level keys replacing its own."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    request.update(extra)
    return request
