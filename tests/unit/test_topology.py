"""What the header says about S3 from inside containers, from the measured topology (no engine needed)."""

from __future__ import annotations

from pytest_sagemaker_contract.platform.data_path import Topology


def topology(gateway: str | None, relay: bool, has_bridge: bool = True) -> Topology:
    return Topology("unix:///x.sock", False, "not shared", gateway, has_bridge, True, relay)


def test_gateway_here_means_direct_s3() -> None:
    t = topology("172.17.0.1", relay=False)
    assert t.container_s3_unavailable() is None
    assert "S3 reachable from containers at 172.17.0.1" in t.header("engine", False, None)


def test_no_gateway_but_a_relay() -> None:
    t = topology(None, relay=True)
    assert t.container_s3_unavailable() is None
    assert "through a relay over the Docker API" in t.header("engine", False, None)


def test_neither_says_why_and_what_to_install() -> None:
    t = topology(None, relay=False)
    reason = t.container_s3_unavailable()
    assert reason is not None
    assert "bridge has no address on this machine" in reason
    assert "busybox-static" in reason
    line = t.header("engine", False, None)
    assert "S3 not reachable from containers" in line
    assert "--sm-needs-s3" in line
    assert "the engine has no bridge" in (
        topology(None, relay=False, has_bridge=False).container_s3_unavailable() or ""
    )
