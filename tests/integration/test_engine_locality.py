"""Whether an engine's default bridge is on this machine decides how containers reach the session's S3.

Measured on the real local and non-local engines: an address that is local only by chance (a local network
that was given the same subnet as the non-local engine's bridge, as Docker's address pools easily do when
many job networks exist) must not make the non-local engine look local; its containers would then be sent to
an S3 address that refuses them (seen as `S3 UNREACHABLE … Connection refused` on every job).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator

import docker
import docker.errors
import docker.types
import pytest

from pytest_sagemaker_contract.platform import Engine


@pytest.fixture
def remote_bridge_subnet_taken_here(
    remote_engine: docker.DockerClient, docker_client: docker.DockerClient
) -> Iterator[str]:
    """A local network on exactly the non-local engine's bridge subnet; yields that bridge's gateway."""
    [config] = remote_engine.api.inspect_network("bridge")["IPAM"]["Config"]
    subnet = config["Subnet"]
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)])
    try:
        network = docker_client.api.create_network(
            f"sm-contract-test-{uuid.uuid4().hex[:8]}", driver="bridge", ipam=ipam
        )
    except docker.errors.APIError as exc:
        if "overlap" not in str(exc):
            raise
        yield gateway  # another local network already has that subnet: the same situation
        return
    try:
        yield gateway
    finally:
        docker_client.api.remove_network(network["Id"])


def test_a_remote_bridge_whose_subnet_is_also_local_is_not_taken_for_a_local_one(
    remote_engine_host: str, remote_bridge_subnet_taken_here: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Engine().bridge_gateway() is not None  # the local engine's bridge is local
    monkeypatch.setenv("DOCKER_HOST", remote_engine_host)
    engine = Engine()
    try:
        assert engine.bridge_gateway() is None, remote_bridge_subnet_taken_here
    finally:
        engine.close()
