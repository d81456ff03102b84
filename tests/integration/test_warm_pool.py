"""Managed warm pools on a real image (issue 18, item 7): with ResourceConfig.KeepAlivePeriodInSeconds the job gets
/opt/ml/sagemaker/warmpoolcache (SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY), and the next matching job of the
session finds what it left there; a job without KeepAlivePeriodInSeconds has neither the variable nor the
directory, and a job that does not match (another instance type) starts with an empty cache. Bind data path and
engine data path (forced on the local engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_sagemaker_contract.jobs import job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.platform.result import TrainingJobResult
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES, data_path_platform, image_on_engine

CACHE = "/opt/ml/sagemaker/warmpoolcache"
SCRIPT = (
    "echo ENV=${SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY-unset}; C=/opt/ml/sagemaker/warmpoolcache; "
    "[ -d $C ] || { echo DIR=absent; exit 0; }; echo DIR=present; "
    "echo FOUND=$(cat $C/m 2>/dev/null || echo none); echo $TRAINING_JOB_NAME >$C/m"
)


@pytest.fixture(scope="module", params=["bind", "engine", "remote"])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingPlatform]:
    with data_path_platform(request, tmp_path_factory.mktemp("warm")) as plat:
        yield plat
    labelled = {"label": f"{LABEL_RUN}={plat.run_id}"}
    assert (plat.engine.api.volumes(filters=labelled).get("Volumes") or []) == [], "warm-pool volumes left"


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


@pytest.fixture(scope="module")
def image(platform: TrainingPlatform, probe: str, docker_client: docker.DockerClient) -> str:
    return image_on_engine(platform, probe, docker_client)


def run(
    plat: TrainingPlatform, image: str, keep_alive: int | None, instance_type: str = "ml.m5.large"
) -> TrainingJobResult:
    request = with_overrides(
        None, name=job_name("warm"), image=image, entrypoint=["/bin/sh", "-c", SCRIPT], instance_type=instance_type
    )
    resource: dict[str, Any] = request["ResourceConfig"]
    if keep_alive is not None:
        resource["KeepAlivePeriodInSeconds"] = keep_alive
    result = plat.run(parse_request(request), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    return result


def line(result: TrainingJobResult, key: str) -> str:
    return next(ln.split(key + "=", 1)[1] for ln in result.logs.splitlines() if key + "=" in ln)


def test_the_cache_moves_to_the_next_matching_job(platform: TrainingPlatform, image: str) -> None:
    first = run(platform, image, keep_alive=600)
    assert line(first, "ENV") == CACHE
    assert line(first, "DIR") == "present"
    assert line(first, "FOUND") == "none", "a new warm pool starts with an empty cache"

    second = run(platform, image, keep_alive=600)
    assert line(second, "FOUND") == first.TrainingJobName, "the matching job finds what the first one cached"

    third = run(platform, image, keep_alive=600)
    assert line(third, "FOUND") == second.TrainingJobName, "the pool moved on to the second job, cache and all"


def test_no_keep_alive_no_cache(platform: TrainingPlatform, image: str) -> None:
    result = run(platform, image, keep_alive=None)
    assert line(result, "ENV") == "unset"
    assert line(result, "DIR") == "absent"


def test_a_job_that_does_not_match_starts_cold(platform: TrainingPlatform, image: str) -> None:
    warm = run(platform, image, keep_alive=600, instance_type="ml.c5.xlarge")
    other = run(platform, image, keep_alive=600, instance_type="ml.c5.2xlarge")
    assert line(other, "DIR") == "present"
    assert line(other, "FOUND") == "none", f"another instance type must not reuse {warm.TrainingJobName}'s pool"
