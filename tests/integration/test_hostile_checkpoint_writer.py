"""The checkpoint attack of issue 22, item 1, carried out by the image itself, as the issue measured it.

tests/images/hostile-checkpoint-writer takes the job role's credentials from the container credentials
endpoint, as any image on SageMaker can, and signs its own S3 PUTs of checkpoint keys that climb out of the
checkpoint prefix towards a host path. The session's next job restores those checkpoints: nothing may appear
on the host, the escaping keys are refused with a warning each, and the honest checkpoint is restored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name
from pytest_sagemaker_contract.platform import TrainingPlatform

from .conftest_helpers import IMAGES, job_spec

pytestmark = [pytest.mark.usefixtures("no_leftovers"), pytest.mark.local_platform(grace_s=5, bridge=True)]


@pytest.fixture(scope="module")
def writer(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "hostile-checkpoint-writer")


def test_checkpoint_keys_an_image_signs_itself_never_reach_the_host(
    platform: TrainingPlatform, writer: str, tmp_path: Path
) -> None:
    uri = f"s3://{CHANNEL_BUCKET}/{job_name('ckpt-writer')}"
    target = tmp_path / "pwned"
    env = {"CKPT_URI": uri, "TARGET": str(target)}
    planted = platform.run(job_spec(writer, "ckpt-writer", checkpoint_s3_uri=uri, environment=env), timeout=120)
    assert planted.TrainingJobStatus == "Completed", planted.log_tail()
    assert planted.logs.count(": 200") == 3, planted.logs  # the image's own signed PUTs were accepted

    resumed = platform.run(
        job_spec(writer, "ckpt-resumed", checkpoint_s3_uri=uri, environment={**env, "MODE": "resume"}), timeout=120
    )
    assert resumed.TrainingJobStatus == "Completed", resumed.log_tail()
    assert not target.exists()
    assert not Path(f"{target}2").exists()
    assert resumed.checkpoints_restored == ["good/ep1.ckpt"]
    assert [line for line in resumed.logs.splitlines() if line.startswith("RESTORED")] == ["RESTORED good/ep1.ckpt"]
    refused = [w for w in resumed.warnings if "was not restored" in w]
    assert len(refused) == 2, resumed.warnings
    assert all("'..' segment" in w for w in refused), refused
