"""A single-host job's network and credentials pod go on to the session's next job (platform/slots.py).

Real jobs on the real engine: the second job runs in the first one's slot, yet gets its own credentials
document and sees nothing the first job left; a slot around a job that went wrong, or whose pod someone
removed, is never handed on; closing the platform removes every slot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.jobs import job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from .conftest_helpers import IMAGES, local_platform

pytestmark = [pytest.mark.usefixtures("no_leftovers"), pytest.mark.local_platform(grace_s=10, bridge=True)]

#: Fetches the job's credentials document from its endpoint, shows the host, and looks for what a job before
#: it might have left: a file in /tmp and a listener on the pod's loopback besides the endpoint's.
PROBE = (
    'echo "URI $AWS_CONTAINER_CREDENTIALS_FULL_URI"; '
    'echo "DOC $(wget -q -O - "$AWS_CONTAINER_CREDENTIALS_FULL_URI")"; '
    'echo "HOST $(hostname)"; '
    'ls /tmp/left-by-first 2>/dev/null && echo "SAW leftover file"; '
    'wget -q -T 2 -O - http://127.0.0.1:8111/ 2>/dev/null && echo "SAW leftover listener"; '
    "echo ok > /tmp/left-by-first; "
    "(busybox nc -lk -p 8111 -e echo hi 2>/dev/null &) ; "
    "echo done > /opt/ml/model/m"
)


@pytest.fixture(scope="module")
def busybox(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


def probe_spec(image: str, prefix: str, **environment: str) -> TrainingJobSpec:
    req = with_overrides(
        None,
        name=job_name(prefix),
        image=image,
        entrypoint=["/bin/sh", "-c", 'eval "$SCRIPT"'],
        environment={"SCRIPT": PROBE, **environment},
    )
    return parse_request(req)


def seen(result: TrainingJobResult, tag: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in result.logs.splitlines() if line.startswith(f"{tag} ")]


def test_the_next_job_runs_in_the_slot_with_its_own_credentials_and_nothing_left(
    platform: TrainingPlatform, busybox: str
) -> None:
    first = platform.run(probe_spec(busybox, "slot-first"), timeout=120)
    assert first.TrainingJobStatus == "Completed", first.log_tail()
    [slot] = platform.slots.idle
    second = platform.run(probe_spec(busybox, "slot-second"), timeout=120)
    assert second.TrainingJobStatus == "Completed", second.log_tail()
    assert platform.slots.idle == (slot,)  # taken by the second job, handed back again

    assert seen(first, "HOST") == seen(second, "HOST") == [slot.hostname]
    [first_uri], [second_uri] = seen(first, "URI"), seen(second, "URI")
    assert first_uri != second_uri  # each job its own document at its own random path
    documents = [json.loads(seen(r, "DOC")[0]) for r in (first, second)]
    assert documents[0]["Token"] != documents[1]["Token"]
    assert not [line for line in second.logs.splitlines() if line.startswith("SAW ")], second.logs


def test_a_slot_around_a_job_that_went_wrong_is_not_handed_on(
    platform: TrainingPlatform, busybox: str, docker_client: docker.DockerClient
) -> None:
    job = platform.start(probe_spec(busybox, "slot-removed", SCRIPT="sleep 60"))
    with job:
        [container] = job.container_ids
        docker_client.api.remove_container(container, force=True)
        result = job.wait(timeout=120)
    assert result.engine_faults, result.describe()
    assert platform.slots.idle == ()


def test_a_slot_whose_pod_was_removed_is_replaced(
    platform: TrainingPlatform, busybox: str, docker_client: docker.DockerClient
) -> None:
    first = platform.run(probe_spec(busybox, "slot-before"), timeout=120)
    assert first.TrainingJobStatus == "Completed", first.log_tail()
    [slot] = platform.slots.idle
    docker_client.api.remove_container(slot.pod, force=True)
    second = platform.run(probe_spec(busybox, "slot-after"), timeout=120)
    assert second.TrainingJobStatus == "Completed", second.log_tail()
    [replacement] = platform.slots.idle
    assert replacement.pod != slot.pod
    assert docker_client.api.networks(ids=[slot.network_id]) == []  # the dead slot's network went with it


def test_closing_the_platform_removes_every_slot(
    busybox: str, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    with local_platform(tmp_path, grace_s=5) as plat:
        result = plat.run(probe_spec(busybox, "slot-close"), timeout=120)
        assert result.TrainingJobStatus == "Completed", result.log_tail()
        assert len(plat.slots.idle) == 1
        run = {"label": f"{LABEL_RUN}={plat.run_id}"}
    assert docker_client.api.containers(all=True, filters=run) == []
    assert docker_client.api.networks(filters=run) == []
