"""Shared test fixtures: a real Docker engine and the example images built on it."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from .helpers import EXAMPLES

sys.path.insert(0, str(EXAMPLES))

import build

pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real engine. Unreachable is a failure, except on a laptop that sets SM_CONTRACT_SKIP_NO_DOCKER=1."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        if os.environ.get("SM_CONTRACT_SKIP_NO_DOCKER") == "1":
            pytest.skip(f"no Docker engine ({exc}) and SM_CONTRACT_SKIP_NO_DOCKER=1")
        pytest.fail(f"integration tests need a running Docker engine: {exc}", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def example_image(docker_client: docker.DockerClient) -> Callable[[str], str]:
    """Build (cached by content) an example under examples/ or any directory with a Dockerfile; returns its tag."""

    def make(what: str | os.PathLike[str]) -> str:
        return str(build.build(docker_client, what))

    return make


@pytest.fixture
def no_leftovers(docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Tag the test's pytest runs (SM_CONTRACT_RUN_ID) and assert they left nothing behind."""
    run_id = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SM_CONTRACT_RUN_ID", run_id)
    yield run_id
    labelled = {"label": f"sm-contract.tag={run_id}"}
    assert docker_client.api.containers(all=True, filters=labelled) == [], "containers left behind"
    assert docker_client.api.networks(filters=labelled) == [], "networks left behind"
    assert list(Path(tempfile.gettempdir()).glob(f"sm-contract-{run_id}-*")) == [], "job directories left behind"
