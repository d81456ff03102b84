"""Multi-host jobs, sharding, network isolation and in-container S3 on the real engine (contract §7, §9).

Observed from inside each container: hostnames, resourceconfig.json, the files each host received,
which peers answer, whether the platform's moto S3 answers, and what credentials are in the env.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES

pytestmark = pytest.mark.local_platform(grace_s=5, bridge=True)


@pytest.fixture(autouse=True)
def nothing_left(platform: TrainingPlatform) -> Iterator[None]:
    yield
    run = {"label": f"{LABEL_RUN}={platform.run_id}"}
    idle = platform.slots.idle  # a single-host job hands its network and pod on to the next (slots.py)
    containers = platform.engine.api.containers(all=True, filters=run)
    assert [c["Names"] for c in containers if c["Id"] not in {s.pod for s in idle}] == []
    networks = platform.engine.api.networks(filters=run)
    assert [n["Name"] for n in networks if n["Id"] not in {s.network_id for s in idle}] == []
    assert list(platform.workdir.iterdir()) == []


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


def seed(platform: TrainingPlatform, prefix: str, count: int) -> str:
    for i in range(count):
        platform.s3.client().put_object(Bucket=CHANNEL_BUCKET, Key=f"{prefix}/part-{i:02d}.csv", Body=b"x")
    return f"s3://{CHANNEL_BUCKET}/{prefix}"


def run(platform: TrainingPlatform, image: str, hosts: int, **overrides: Any) -> TrainingJobResult:
    env = overrides.pop("environment", {})
    request = with_overrides(None, name=job_name("cluster"), image=image, instance_count=hosts, environment=env)
    request.update(overrides.pop("request", {}))
    for key, value in overrides.items():
        request[key] = value
    return platform.run(parse_request(request), timeout=300)


def per_host(result: TrainingJobResult, tag: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in result.logs.splitlines():
        host, _, rest = line.partition("] ")
        if rest.startswith(tag + " "):
            out.setdefault(host.lstrip("["), []).append(rest[len(tag) + 1 :])
    return out


def sharded_channel(uri: str) -> list[dict[str, Any]]:
    return [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "ShardedByS3Key"}
            },
        }
    ]


def test_three_hosts_names_config_and_peers(platform: TrainingPlatform, probe: str) -> None:
    peers = "algo-1 algo-2 algo-3"
    result = run(platform, probe, 3, environment={"PEERS": peers})
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    hosts = per_host(result, "HOST")
    assert hosts == {h: [h] for h in ("algo-1", "algo-2", "algo-3")}
    # gethostname() is the instance's own name, distinct per host, never algo-N (contract §7, §11).
    names = {host: text for host, [text] in per_host(result, "HOSTNAME").items()}
    assert sorted(names) == ["algo-1", "algo-2", "algo-3"]
    assert all(re.fullmatch(r"ip-10-0-\d+-\d+", name) for name in names.values()), names
    assert len(set(names.values())) == 3
    for host, [text] in per_host(result, "RESOURCE").items():
        config = json.loads(text)
        assert config["current_host"] == host
        assert config["hosts"] == ["algo-1", "algo-2", "algo-3"]
    for host, answers in per_host(result, "PEER").items():
        assert answers == [f"{p} yes" for p in peers.split()], host
    assert result.model_files == ["algo-1.txt", "algo-2.txt", "algo-3.txt"]
    assert result.model_clashes == []


def test_sharded_by_s3_key_is_disjoint_and_complete(platform: TrainingPlatform, probe: str) -> None:
    uri = seed(platform, "shard-7", 7)
    result = run(platform, probe, 3, InputDataConfig=sharded_channel(uri))
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    data = per_host(result, "DATA")
    received = [set(data.get(h, [])) for h in ("algo-1", "algo-2", "algo-3")]
    everything = {f"train/part-{i:02d}.csv" for i in range(7)}
    assert set().union(*received) == everything
    assert sum(len(r) for r in received) == 7
    assert [len(r) for r in received] == [3, 2, 2]


def test_more_hosts_than_objects(platform: TrainingPlatform, probe: str) -> None:
    uri = seed(platform, "shard-2", 2)
    result = run(platform, probe, 3, InputDataConfig=sharded_channel(uri))
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    data = per_host(result, "DATA")
    assert sorted(len(data.get(h, [])) for h in ("algo-1", "algo-2", "algo-3")) == [0, 1, 1]


def test_first_failure_fails_the_job_and_names_the_host(platform: TrainingPlatform, probe: str) -> None:
    result = run(platform, probe, 3, environment={"EXIT_CODE_algo_2": "4"})
    assert result.TrainingJobStatus == "Failed"
    assert result.FailureReason == "AlgorithmError: host algo-2 failed on purpose, exit code: 4 (host algo-2)"
    assert result.exit_code == 4


def test_model_name_clash_between_hosts_is_reported(platform: TrainingPlatform, probe: str) -> None:
    """Different contents under one name is a clash; identical copies (CLASH=same) are not."""
    result = run(platform, probe, 2, environment={"CLASH": "1"})
    assert result.TrainingJobStatus == "Completed"
    assert result.model_files == ["model.txt"]
    assert result.model_clashes == ["model.txt"]
    same = run(platform, probe, 2, environment={"CLASH": "same"})
    assert same.model_files == ["model.txt"]
    assert same.model_clashes == []


def test_heterogeneous_groups_and_channel_group_limits(platform: TrainingPlatform, probe: str) -> None:
    uri = seed(platform, "hetero", 2)
    channel = sharded_channel(uri)
    channel[0]["DataSource"]["S3DataSource"].update(
        {"S3DataDistributionType": "FullyReplicated", "InstanceGroupNames": ["data"]}
    )
    groups = [
        {"InstanceGroupName": "data", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
        {"InstanceGroupName": "gpu", "InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
    ]
    result = run(
        platform, probe, 1, ResourceConfig={"InstanceGroups": groups, "VolumeSizeInGB": 10}, InputDataConfig=channel
    )
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    configs = {h: json.loads(t[0]) for h, t in per_host(result, "RESOURCE").items()}
    assert {h: (c["current_group_name"], c["current_instance_type"]) for h, c in configs.items()} == {
        "algo-1": ("data", "ml.c5.xlarge"),
        "algo-2": ("gpu", "ml.g5.xlarge"),
        "algo-3": ("gpu", "ml.g5.xlarge"),
    }
    assert configs["algo-2"]["instance_groups"] == [
        {"instance_group_name": "data", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]},
        {"instance_group_name": "gpu", "instance_type": "ml.g5.xlarge", "hosts": ["algo-2", "algo-3"]},
    ]
    data = per_host(result, "DATA")
    assert sorted(data.get("algo-1", [])) == ["train/part-00.csv", "train/part-01.csv"]
    assert "algo-2" not in data
    assert "algo-3" not in data


def _s3_env(platform: TrainingPlatform) -> dict[str, str]:
    endpoint = urlparse(platform.s3.endpoint_url)
    return {"S3_HOST": str(endpoint.hostname), "S3_PORT": str(endpoint.port)}


@pytest.mark.parametrize("hosts", [1, 2])
def test_without_isolation_containers_reach_s3_with_dummy_credentials_only(
    platform: TrainingPlatform, probe: str, hosts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-hosts-own-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "the-hosts-own-token")
    result = run(platform, probe, hosts, environment=_s3_env(platform))
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.logs.count("S3 reachable") == hosts
    assert "the-hosts-own" not in result.logs
    keys = platform.s3.keys
    # No static keys and no AWS_DEFAULT_REGION, as on SageMaker: the role's credentials come from the
    # container credentials endpoint, the region from AWS_REGION (contract §11).
    assert result.logs.count(f"CREDS none none {platform.s3.endpoint_url}") == hosts
    assert result.logs.count("REGION us-east-1 none") == hosts
    docs = [json.loads(text) for [text] in per_host(result, "CREDDOC").values()] if hosts > 1 else []
    if hosts == 1:
        docs = [json.loads(line.split(" ", 1)[1]) for line in result.logs.splitlines() if line.startswith("CREDDOC ")]
    assert len(docs) == hosts
    for doc in docs:
        assert (doc["AccessKeyId"], doc["SecretAccessKey"]) == (keys.access_key_id, keys.secret_access_key)
        assert doc["Token"]
        assert doc["Expiration"].endswith("Z")
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "the-hosts-own-secret"


@pytest.mark.parametrize("hosts", [1, 3])
def test_network_isolation_blocks_s3_but_not_peers(platform: TrainingPlatform, probe: str, hosts: int) -> None:
    """Isolated hosts resolve and reach their own name and their peers' (one host included: AWS's toolkit
    resolves every host before it starts the user code), and nothing else: not the platform's S3."""
    peers = " ".join(f"algo-{i}" for i in range(1, hosts + 1))
    result = run(platform, probe, hosts, environment={**_s3_env(platform), "PEERS": peers}, EnableNetworkIsolation=True)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "S3 reachable" not in result.logs
    assert result.logs.count("S3 unreachable") == hosts
    assert "CREDS none none none" in result.logs
    assert result.logs.count("CREDURI none") == hosts  # no credentials at all under isolation (§9, §11)
    assert "sagemaker-contract" not in result.logs
    if hosts == 1:  # one host's log lines carry no host prefix
        assert "PEER algo-1 yes" in result.logs.splitlines(), result.log_tail()
        return
    answers_by_host = per_host(result, "PEER")
    assert sorted(answers_by_host) == peers.split()
    for host, answers in answers_by_host.items():
        assert answers == [f"{p} yes" for p in peers.split()], host
