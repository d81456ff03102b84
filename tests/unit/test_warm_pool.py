"""Warm-pool matching and lifetime (issue 18, item 7), on a controlled clock: what the developer guide's "Matching
training jobs" and "Maximum warm pool duration" say, without waiting for real time to pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_sagemaker_contract.platform.layout import container_environment
from pytest_sagemaker_contract.platform.warm_pool import WARM_POOL_CACHE, WARM_POOL_ENV, WarmPools
from pytest_sagemaker_contract.spec import DEFAULT_ROLE_ARN, TrainingJobSpec, parse_request


def spec(name: str = "job", image: str = "img:1", keep_alive: int | None = 60, **top: Any) -> TrainingJobSpec:
    resource: dict[str, Any] = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10}
    if keep_alive is not None:
        resource["KeepAlivePeriodInSeconds"] = keep_alive
    req: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": DEFAULT_ROLE_ARN,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/output"},
        "ResourceConfig": resource,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    for key, value in top.items():
        if key in resource or key in ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId"):
            resource[key] = value
        else:
            req[key] = value
    return parse_request(req)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_matching_job_takes_over_the_pool_whatever_its_image(tmp_path: Path) -> None:
    pools = WarmPools(tmp_path, Clock())
    first = pools.claim(spec("a", image="img:1"))
    assert first is not None
    pool, reused = first
    assert reused is False
    (pools.directory(pool, 0) / "cache").write_text("x")
    pools.release(pool, 60, healthy=True)
    second = pools.claim(spec("b", image="img:2"))
    assert second is not None
    assert second == (pool, True)
    assert (pools.directory(pool, 0) / "cache").read_text() == "x"
    assert pool.jobs == ["a", "b"]


def test_a_pool_in_use_is_not_shared(tmp_path: Path) -> None:
    pools = WarmPools(tmp_path, Clock())
    first = pools.claim(spec("a"))
    second = pools.claim(spec("b"))
    assert first is not None
    assert second is not None
    assert first[0] is not second[0]
    assert second[1] is False


def test_every_matching_field_counts(tmp_path: Path) -> None:
    for different in (
        {"InstanceType": "ml.m5.xlarge"},
        {"InstanceCount": 2},
        {"VolumeSizeInGB": 20},
        {"VolumeKmsKeyId": "alias/other"},
        {"RoleArn": "arn:aws:iam::123456789012:role/other"},
        {"EnableNetworkIsolation": True},
        {"EnableInterContainerTrafficEncryption": True},
        {"VpcConfig": {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}},
    ):
        pools = WarmPools(tmp_path / str(len(list(tmp_path.iterdir()))), Clock())
        first = pools.claim(spec("a"))
        assert first is not None
        pools.release(first[0], 60, healthy=True)
        other = pools.claim(spec("b", **different))
        assert other is not None
        assert other[1] is False, f"{different} must not match"


def test_the_pool_ends_after_the_keep_alive_period(tmp_path: Path) -> None:
    clock = Clock()
    pools = WarmPools(tmp_path, clock)
    claimed = pools.claim(spec("a"))
    assert claimed is not None
    pool = claimed[0]
    pools.release(pool, 60, healthy=True)
    clock.now += 59
    assert pools.available() == [pool]
    clock.now += 1
    assert pools.available() == []
    assert not pools.directory(pool, 0).exists(), "the cache is deleted with the pool"
    again = pools.claim(spec("b"))
    assert again is not None
    assert again[1] is False


def test_an_unhealthy_end_keeps_no_pool(tmp_path: Path) -> None:
    pools = WarmPools(tmp_path, Clock())
    claimed = pools.claim(spec("a"))
    assert claimed is not None
    pools.release(claimed[0], 60, healthy=False)
    assert pools.available() == []


def test_no_pool_without_keep_alive_with_spot_or_with_instance_groups(tmp_path: Path) -> None:
    pools = WarmPools(tmp_path, Clock())
    assert pools.claim(spec("a", keep_alive=None)) is None
    spot = spec(
        "s", EnableManagedSpotTraining=True, StoppingCondition={"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 60}
    )
    assert pools.claim(spot) is None
    assert any("KeepAlivePeriodInSeconds (no warm pool" in n for n in spot.not_simulated)
    assert WARM_POOL_ENV not in container_environment(spot, "us-east-1", True)


def test_the_environment_names_the_cache_only_with_keep_alive() -> None:
    assert container_environment(spec(keep_alive=60), "us-east-1", True)[WARM_POOL_ENV] == WARM_POOL_CACHE
    assert WARM_POOL_ENV not in container_environment(spec(keep_alive=None), "us-east-1", True)
