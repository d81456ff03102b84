"""Fixtures shared by the integration tests: the test's own local platform and real check handles on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.contract import CHECKS, CheckContext
from pytest_sagemaker_contract.contract.suite import ContractItem
from pytest_sagemaker_contract.fixtures import TrainingJobFactory
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.session import session_of

from .conftest_helpers import REMOTE_HOST, REMOTE_TOOL, local_platform

#: The non-local engine (.ci/remote-engine) mounts a tmpfs of its own at /tmp: a directory of this machine is out
#: of its sight only there. Elsewhere (a TMPDIR such as /var/tmp) it shares this machine's files.
REMOTE_PRIVATE_TMP = "/tmp"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "local_platform(grace_s=30, bridge=False, **kw): how the module's `platform` fixture is built "
        "(tests/integration/conftest_helpers.py local_platform)",
    )


@pytest.fixture(scope="module")
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingPlatform]:
    """A platform on the local engine with its own S3, one per module, set by the module's
    `pytestmark = pytest.mark.local_platform(grace_s=..., bridge=...)` (a module may define its own instead)."""
    marker = request.node.get_closest_marker("local_platform")
    options = dict(marker.kwargs) if marker is not None else {}
    grace_s = options.pop("grace_s", 30)
    with local_platform(
        tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), grace_s, **options
    ) as plat:
        yield plat


@pytest.fixture
def contract_check(request: pytest.FixtureRequest, platform: TrainingPlatform) -> Callable[[str], CheckContext]:
    """`contract_check(check_id)`: the built-in check's handle as the suite builds it (its own item, this
    process's contract session) over the test's platform: for the checks' verdict functions applied to a result
    the test ran itself."""

    def make(check_id: str) -> CheckContext:
        (check,) = [c for c in CHECKS if c.id == check_id]
        item = ContractItem.from_parent(request.node.parent, name=check_id, check=check, callobj=check.func)
        jobs = TrainingJobFactory(session_of(request.config), request, {})
        return CheckContext(item, "", jobs, platform)

    return make


def _remote_answers() -> bool:
    client = docker.DockerClient(base_url=REMOTE_HOST, timeout=10)
    try:
        client.ping()
    except Exception:
        return False
    finally:
        client.close()
    return True


@pytest.fixture(scope="session")
def remote_engine_host() -> Iterator[str]:
    """The non-local engine's DOCKER_HOST. Started with .ci/remote-engine when it is not running (CI starts it
    before pytest) and then stopped at the end; skipped only when the tool is missing or cannot run here (it needs
    root), unless SM_CONTRACT_REQUIRE_REMOTE=1 (CI), where that is a failure."""
    why = None
    started = False
    if _remote_answers():
        pass
    elif not REMOTE_TOOL.exists():
        why = f"{REMOTE_TOOL} is missing"
    elif os.geteuid() != 0:
        why = "the remote-engine tool starts a second dockerd and needs root"
    else:
        done = subprocess.run([str(REMOTE_TOOL), "start"], capture_output=True, text=True, timeout=120, check=False)
        started = done.returncode == 0
        if not started:
            why = f"remote-engine start failed: {done.stderr.strip()[-300:]}"
    if why is not None:
        if os.environ.get("SM_CONTRACT_REQUIRE_REMOTE") == "1":
            pytest.fail(f"SM_CONTRACT_REQUIRE_REMOTE=1 but {why}", pytrace=False)
        pytest.skip(why)
    yield REMOTE_HOST
    if not started:
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        warnings.warn(
            f"kept the non-local engine this test run started ({REMOTE_HOST}): other xdist workers may still use "
            f"it; stop it with `{REMOTE_TOOL} stop`",
            stacklevel=1,
        )
        return
    subprocess.run([str(REMOTE_TOOL), "stop"], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def remote_engine(remote_engine_host: str) -> Iterator[docker.DockerClient]:
    """A client of the non-local engine."""
    client = docker.DockerClient(base_url=remote_engine_host, timeout=300)
    yield client
    client.close()


@pytest.fixture
def remote_private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory the non-local engine cannot see, made this process's and its subprocesses' TMPDIR:
    with TMPDIR outside /tmp, job directories there would be shared with that engine, which is not the premise."""
    path = Path(tempfile.mkdtemp(prefix="sm-contract-test-", dir=REMOTE_PRIVATE_TMP))
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)
