"""Where S3 objects land (contract.md §3), how they are sharded (§7), and how job requests are derived."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sagemaker_contract.jobs import default_request, job_name, with_overrides
from pytest_sagemaker_contract.platform.channels import shard
from pytest_sagemaker_contract.platform.s3 import S3Object, parse_s3_uri, relative_key
from pytest_sagemaker_contract.spec import parse_request

JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


@pytest.mark.parametrize(
    ("prefix", "key", "expected"),
    [
        ("data/train", "data/train-1.csv", "train-1.csv"),  # the contract's own example
        ("data/train", "data/train/x.csv", "x.csv"),  # the prefix as a folder (upload_data(key_prefix=...))
        ("data/train/", "data/train/x.csv", "x.csv"),
        ("data/train/", "data/train/sub/deep/y.csv", "sub/deep/y.csv"),
        ("data/train", "data/train/sub/y.csv", "sub/y.csv"),
        ("data/tr", "data/train/x.csv", "train/x.csv"),  # a partial name keeps the rest of the path
        ("data/train.csv", "data/train.csv", "train.csv"),  # an S3Uri naming one object
        ("train", "train-2.csv", "train-2.csv"),
        ("train", "train/a.csv", "a.csv"),
        ("", "top/a.csv", "top/a.csv"),
    ],
)
def test_relative_key(prefix: str, key: str, expected: str) -> None:
    assert relative_key(prefix, key) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/some/prefix", ("bucket", "some/prefix")),
        ("s3://bucket/some/prefix/", ("bucket", "some/prefix/")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["https://bucket/key", "bucket/key", "s3:///key", "s3://"])
def test_parse_s3_uri_rejects(uri: str) -> None:
    with pytest.raises(ValueError, match=r"s3://|no bucket"):
        parse_s3_uri(uri)


keys = st.lists(st.text("abc/-_.0123456789", min_size=1, max_size=12), unique=True, max_size=40)


def objects_of(names: list[str]) -> list[S3Object]:
    return [S3Object("bucket", name, len(name)) for name in names]


@given(names=keys, hosts=st.integers(min_value=1, max_value=8), seed=st.randoms(use_true_random=False))
def test_shard_is_disjoint_complete_and_deterministic(names: list[str], hosts: int, seed: Any) -> None:
    objects = objects_of(names)
    parts = [shard(objects, i, hosts) for i in range(hosts)]
    seen = [o.key for part in parts for o in part]
    assert sorted(seen) == sorted(names)  # complete, and no object twice (disjoint)
    assert len(seen) == len(set(seen))
    shuffled = list(objects)
    seed.shuffle(shuffled)
    assert [shard(shuffled, i, hosts) for i in range(hosts)] == parts  # independent of listing order
    sizes = [len(p) for p in parts]
    assert max(sizes, default=0) - min(sizes, default=0) <= 1  # balanced by count


@given(count=st.integers(min_value=0, max_value=5), extra=st.integers(min_value=1, max_value=5))
def test_shard_more_hosts_than_objects_leaves_some_empty(count: int, extra: int) -> None:
    objects = objects_of([f"k{i}" for i in range(count)])
    hosts = count + extra
    parts = [shard(objects, i, hosts) for i in range(hosts)]
    assert sum(1 for p in parts if not p) >= extra
    assert all(len(p) <= 1 for p in parts)


# -- jobs.with_overrides / job_name -------------------------------------------------------------


def base_request() -> dict[str, Any]:
    req = default_request("base")
    req["AlgorithmSpecification"].update(ContainerEntrypoint=["/bin/sh"], ContainerArguments=["run.sh"])
    req["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "ContentType": "text/csv",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://b/train",
                    "S3DataDistributionType": "ShardedByS3Key",
                }
            },
        }
    ]
    req["HyperParameters"] = {"a": "1"}
    req["Environment"] = {"X": "1"}
    return req


def test_with_overrides_never_mutates_base() -> None:
    base = base_request()
    before = copy.deepcopy(base)
    with_overrides(
        base,
        name="n",
        image="img",
        hyperparameters={"b": "2"},
        environment={"Y": "2"},
        channel_uris={"train": "s3://b/other", "eval": "s3://b/eval"},
        instance_count=2,
        keep_invocation=False,
        max_runtime=5,
        checkpoint_s3_uri="s3://b/ckpt",
    )
    assert base == before


def test_with_overrides_keeps_channels_and_adds_new_ones() -> None:
    req = with_overrides(
        base_request(), name="n", image="img", channel_uris={"train": "s3://b/new", "eval": "s3://b/eval"}
    )
    train, evaluation = req["InputDataConfig"]
    assert train["ContentType"] == "text/csv"
    assert train["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert train["DataSource"]["S3DataSource"]["S3Uri"] == "s3://b/new"
    assert evaluation["ChannelName"] == "eval"
    assert evaluation["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": "s3://b/eval",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert [c.name for c in parse_request(req).channels] == ["train", "eval"]


def test_with_overrides_merges_hyperparameters_and_environment() -> None:
    req = with_overrides(base_request(), name="n", image="img", hyperparameters={"b": "2"}, environment={"Y": "2"})
    assert req["HyperParameters"] == {"a": "1", "b": "2"}
    assert req["Environment"] == {"X": "1", "Y": "2"}
    assert req["TrainingJobName"] == "n"
    assert req["AlgorithmSpecification"]["TrainingImage"] == "img"


def test_with_overrides_invocation() -> None:
    kept = with_overrides(base_request(), name="n", image="img")["AlgorithmSpecification"]
    assert (kept["ContainerEntrypoint"], kept["ContainerArguments"]) == (["/bin/sh"], ["run.sh"])
    dropped = with_overrides(base_request(), name="n", image="img", keep_invocation=False)["AlgorithmSpecification"]
    assert "ContainerEntrypoint" not in dropped
    assert "ContainerArguments" not in dropped
    replaced = with_overrides(base_request(), name="n", image="img", keep_invocation=False, arguments=["x"])
    assert replaced["AlgorithmSpecification"]["ContainerArguments"] == ["x"]
    assert "ContainerEntrypoint" not in replaced["AlgorithmSpecification"]


def test_with_overrides_instance_override_drops_instance_groups() -> None:
    base = default_request("base")
    base["ResourceConfig"] = {
        "InstanceGroups": [{"InstanceGroupName": "g", "InstanceType": "ml.c5.xlarge", "InstanceCount": 2}],
        "VolumeSizeInGB": 10,
    }
    untouched = with_overrides(base, name="n", image="img")
    assert "InstanceGroups" in untouched["ResourceConfig"]
    req = with_overrides(base, name="n", image="img", instance_count=3)
    assert req["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 3, "VolumeSizeInGB": 10}
    assert parse_request(req).hosts == ("algo-1", "algo-2", "algo-3")
    typed = with_overrides(base, name="n", image="img", instance_type="ml.g5.xlarge")
    assert typed["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert "InstanceGroups" not in typed["ResourceConfig"]


def test_with_overrides_without_base_is_a_valid_request() -> None:
    req = with_overrides(None, name="fresh", image="img", max_runtime=5, checkpoint_s3_uri="s3://b/c")
    spec = parse_request(req)
    assert (spec.name, spec.image, spec.max_runtime_s) == ("fresh", "img", 5)
    assert spec.checkpoint is not None
    assert spec.checkpoint.s3_uri == "s3://b/c"


@given(prefix=st.text(max_size=120))
def test_job_name_is_always_valid(prefix: str) -> None:
    name = job_name(prefix)
    assert len(name) <= 63
    assert JOB_NAME.fullmatch(name), name


def test_job_name_is_unique_and_keeps_a_readable_prefix() -> None:
    first, second = job_name("test_four shapes[ce]"), job_name("test_four shapes[ce]")
    assert first != second
    assert first.startswith("test-four-shapes-ce-")
