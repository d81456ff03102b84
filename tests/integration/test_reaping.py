"""Reaping never breaks a session and never touches a living one (issue 17, item 5).

Real processes on the real engine: a "session" here is a Python process that claims the engine through
the platform layer (starting its keeper), creates a container, a network, a volume and a work directory
labelled with its owner, prints `ready` and blocks. It runs in another PID namespace with the same host
name (`unshare --pid --fork --mount-proc`, as a CI container with the host's network and Docker socket) or
with another host name (`unshare --uts`, as another machine on a shared engine). The reaper runs here or in
another PID namespace. A live session's resources are never removed; a SIGKILLed one's are. Every wait is
on an event: the `ready` line, the engine reporting the keeper removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from pytest_sagemaker_contract import image_facts
from pytest_sagemaker_contract.platform import owner as owner_module
from pytest_sagemaker_contract.platform.engine import LABEL, Engine
from pytest_sagemaker_contract.platform.helper import helper_image
from pytest_sagemaker_contract.platform.owner import (
    LABEL_ID,
    LABEL_KEEPER,
    OWNER_FILE,
    WORKDIR_GLOB,
    Owner,
    Reaped,
    claim,
    reap_dead_sessions,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1) for new namespaces"
)

#: One session: claims the engine (keeper) or, with MODE=pid, labels by pid only; creates its resources.
SESSION = """
import json, os, sys, tempfile
from pathlib import Path
from pytest_sagemaker_contract.platform.engine import Engine
from pytest_sagemaker_contract.platform.owner import claim, current_owner, write_owner_file
tag, helper, root, mode = sys.argv[1:5]
engine = Engine()
if mode == "keeper":
    claim(engine)
else:
    engine.default_labels.update(current_owner(keeper=False).labels())
engine.default_labels["sm-contract.tag"] = tag
name = f"sm-reap-{tag}"
engine.create_network(name, {}, internal=False)
engine.create_volume(name, {})
cid = engine.create(
    image=helper, name=name, hostname="reap", entrypoint=["/bin/busybox", "sleep", "3600"], command=None,
    environment={}, binds={}, labels={}, network=name,
)
assert engine.start(cid).error is None
workdir = Path(tempfile.mkdtemp(prefix=f"sm-contract-{tag}-", dir=root))
write_owner_file(workdir, engine)
print(json.dumps({"ready": dict(engine.default_labels), "workdir": str(workdir)}), flush=True)
sys.stdin.read()
"""

#: The reaper as a process of its own (to run it in another PID namespace); prints what it did as JSON.
REAPER = """
import json, sys
from pathlib import Path
from pytest_sagemaker_contract.platform.engine import Engine
from pytest_sagemaker_contract.platform.owner import claim, reap_dead_sessions
engine = Engine()
claim(engine)
reaped = reap_dead_sessions(engine, Path(sys.argv[1]))
print(json.dumps({"removed": reaped.removed, "warnings": reaped.warnings}), flush=True)
"""

NEW_PIDNS = ["unshare", "--pid", "--fork", "--mount-proc"]


def other_host(name: str) -> list[str]:
    return ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$@"', "sh"]


class Victim:
    """A session process holding a container, a network, a volume and a work directory."""

    def __init__(self, prefix: list[str], helper: str, root: Path, mode: str = "keeper") -> None:
        self.tag = f"r{uuid.uuid4().hex[:8]}"
        self.name = f"sm-reap-{self.tag}"
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", SESSION, self.tag, helper, str(root), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the session did not start: {self.proc.communicate()[1]}"
        ready = json.loads(line)
        self.labels: dict[str, str] = ready["ready"]
        self.workdir = Path(ready["workdir"])

    @property
    def owner(self) -> Owner:
        owner = Owner.from_mapping(self.labels)
        assert owner is not None
        return owner

    def kill(self, client: docker.DockerClient) -> None:
        """SIGKILL the whole process group, then wait for the engine to remove the session's keeper."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()
        for keeper in client.api.containers(all=True, filters={"label": f"{LABEL_KEEPER}={self.owner.id}"}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.wait(keeper["Id"], timeout=60, condition="removed")

    def resources(self, client: docker.DockerClient) -> list[str]:
        """Which of the session's resources still exist."""
        labelled = {"label": f"sm-contract.tag={self.tag}"}
        found = [f"container {c['Names'][0].lstrip('/')}" for c in client.api.containers(all=True, filters=labelled)]
        found += [f"network {n['Name']}" for n in client.api.networks(filters=labelled)]
        found += [f"volume {v['Name']}" for v in client.api.volumes(filters=labelled).get("Volumes") or []]
        if self.workdir.exists():
            found.append(f"directory {self.workdir}")
        return sorted(found)

    def all_resources(self) -> list[str]:
        kinds = ("container", "network", "volume")
        return sorted([*(f"{kind} {self.name}" for kind in kinds), f"directory {self.workdir}"])


@pytest.fixture(scope="module")
def helper() -> str:
    engine = Engine()
    image, why = helper_image(engine)
    engine.client.close()
    if image is None:
        pytest.fail(f"the reaping tests need the platform's helper image: {why}", pytrace=False)
    return image


@pytest.fixture
def victims(docker_client: docker.DockerClient, helper: str, tmp_path: Path) -> Iterator[list[Victim]]:
    started: list[Victim] = []
    yield started
    for victim in started:
        if victim.proc.poll() is None:
            os.killpg(victim.proc.pid, signal.SIGKILL)
            victim.proc.communicate()
        labelled = {"label": f"sm-contract.tag={victim.tag}"}
        for container in docker_client.api.containers(all=True, filters=labelled):
            docker_client.api.remove_container(container["Id"], force=True)
        for network in docker_client.api.networks(filters=labelled):
            docker_client.api.remove_network(network["Id"])
        for volume in docker_client.api.volumes(filters=labelled).get("Volumes") or []:
            docker_client.api.remove_volume(volume["Name"], force=True)


def reap_here(root: Path) -> Reaped:
    engine = Engine()
    try:
        return reap_dead_sessions(engine, root)
    finally:
        engine.client.close()


def reap_in(prefix: list[str], root: Path) -> Reaped:
    done = subprocess.run(
        [*prefix, sys.executable, "-c", REAPER, str(root)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return Reaped(out["removed"], out["warnings"])


def assert_reaped(victim: Victim, reaped: Reaped, client: docker.DockerClient) -> None:
    """Everything of the dead session is gone; this reaper removed its directory (only it scans `root`) and
    whatever of the engine's resources a concurrent session on this engine had not reaped first."""
    mine = [r for r in reaped.removed if victim.tag in r]
    assert f"directory {victim.workdir}" in mine, reaped.removed
    assert set(mine) <= set(victim.all_resources())
    assert victim.resources(client) == []


@pytest.mark.parametrize(
    "where",
    [pytest.param(NEW_PIDNS, id="other-pid-namespace"), pytest.param(other_host("sm-other-host"), id="other-host")],
)
def test_a_live_session_elsewhere_is_kept_and_a_sigkilled_one_is_reaped(
    where: list[str], victims: list[Victim], helper: str, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    victim = Victim(where, helper, tmp_path)
    victims.append(victim)
    assert victim.owner.keeper
    assert victim.resources(docker_client) == victim.all_resources()

    # Reapers here, in another PID namespace and on another host name: none may touch the live session.
    for reaped in (reap_here(tmp_path), reap_in(NEW_PIDNS, tmp_path), reap_in(other_host("sm-third-host"), tmp_path)):
        assert not [r for r in reaped.removed if victim.tag in r], reaped.removed
        assert reaped.warnings == []
        assert victim.resources(docker_client) == victim.all_resources()

    victim.kill(docker_client)
    reaped = reap_here(tmp_path)
    assert_reaped(victim, reaped, docker_client)
    assert reaped.warnings == []


def test_without_a_keeper_a_pid_in_another_namespace_is_never_judged_dead(
    victims: list[Victim], helper: str, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """The pid fallback: a reaper that cannot see the owner's pid (another PID namespace) leaves it alone,
    and the same host's own namespace still reaps a SIGKILLed owner it can judge."""
    remote = Victim(NEW_PIDNS, helper, tmp_path, mode="pid")
    local = Victim([], helper, tmp_path, mode="pid")
    victims.extend((remote, local))
    assert not remote.owner.keeper
    assert remote.owner.pid == 1

    for reaped in (reap_here(tmp_path), reap_in(NEW_PIDNS, tmp_path)):
        assert not [r for r in reaped.removed if remote.tag in r or local.tag in r], reaped.removed
    assert remote.resources(docker_client) == remote.all_resources()
    assert local.resources(docker_client) == local.all_resources()

    remote.kill(docker_client)
    local.kill(docker_client)
    assert not [r for r in reap_in(NEW_PIDNS, tmp_path).removed if local.tag in r], "judged from another namespace"
    assert_reaped(local, reap_here(tmp_path), docker_client)
    # Another namespace's dead owner cannot be judged by pid: it stays (the keeper is what reaps it).
    assert remote.resources(docker_client) == remote.all_resources()


def test_a_network_that_cannot_be_removed_leaves_the_next_session_working_with_one_warning(
    victims: list[Victim], helper: str, tmp_path: Path, docker_client: docker.DockerClient, pytester: pytest.Pytester
) -> None:
    """A dead session's network with endpoints on it: the platform's own are force-disconnected and the
    network removed; a running container that is not the platform's keeps it, and the next session still
    starts and passes, with one warning line naming the network and the fix."""
    stuck, freed = Victim([], helper, tmp_path), Victim([], helper, tmp_path)
    victims.extend((stuck, freed))
    foreign = docker_client.api.create_container(
        helper, entrypoint=["/bin/busybox", "sleep", "3600"], labels={"sm-reap-test": stuck.tag}
    )
    ours = docker_client.api.create_container(
        helper, entrypoint=["/bin/busybox", "sleep", "3600"], labels={LABEL: "1", "sm-reap-test": freed.tag}
    )
    try:
        docker_client.api.connect_container_to_network(foreign["Id"], stuck.name)
        docker_client.api.connect_container_to_network(ours["Id"], freed.name)
        docker_client.api.start(foreign["Id"])
        docker_client.api.start(ours["Id"])
        stuck.kill(docker_client)
        freed.kill(docker_client)

        pytester.makepyfile("def test_platform(sagemaker_platform):\n    assert sagemaker_platform.engine\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-image={helper}", "--sm-no-suite")
        result.assert_outcomes(passed=1)
        out = result.stdout.str()
        assert "Traceback" not in out
        assert "APIError" not in out
        warnings = [line for line in result.outlines if line.startswith("sagemaker-contract: warning:")]
        assert len(warnings) == 1, warnings
        [warning] = warnings
        assert f"could not remove network {stuck.name} left by a dead session" in warning
        foreign_name = docker_client.api.inspect_container(foreign["Id"])["Name"].lstrip("/")
        assert f"running container(s) {foreign_name}, not the platform's, still use it" in warning
        assert f"docker network disconnect {stuck.name} {foreign_name}" in warning
        assert warning.endswith(
            f"remove it with: docker network rm {stuck.name} (a stale endpoint may need an engine restart)"
        )

        # The session reaps /tmp's directories, not this test's: only the engine's resources are compared.
        assert [r for r in stuck.resources(docker_client) if not r.startswith("directory")] == [f"network {stuck.name}"]
        assert docker_client.api.inspect_container(foreign["Id"])["State"]["Running"], "a foreign container was cut off"
        assert [r for r in freed.resources(docker_client) if not r.startswith("directory")] == []
        assert stuck.name not in docker_client.api.inspect_container(ours["Id"])["NetworkSettings"]["Networks"]
    finally:
        for container in (foreign, ours):
            docker_client.api.remove_container(container["Id"], force=True)


def test_a_live_pytest_session_in_another_pid_namespace_keeps_its_running_job(
    victims: list[Victim], helper: str, tmp_path: Path, docker_client: docker.DockerClient, pytester: pytest.Pytester
) -> None:
    """The issue's case end to end: a session's job is running while a pytest in the initial namespace
    starts: the job's container is still running after it (on main it was removed)."""
    victim = Victim(NEW_PIDNS, helper, tmp_path)
    victims.append(victim)
    pytester.makepyfile("def test_platform(sagemaker_platform):\n    assert sagemaker_platform.engine\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-image={helper}", "--sm-no-suite")
    result.assert_outcomes(passed=1)
    assert victim.tag not in result.stdout.str()
    [container] = docker_client.api.containers(filters={"label": f"sm-contract.tag={victim.tag}"})
    assert container["State"] == "running"


def test_the_owner_file_of_a_directory_without_one_is_left_alone(tmp_path: Path) -> None:
    """A directory that only looks like a session's (no owner file, or an unreadable one) is never removed."""
    bare = tmp_path / "sm-contract-bare-x"
    bare.mkdir()
    garbled = tmp_path / "sm-contract-garbled-x"
    garbled.mkdir()
    (garbled / OWNER_FILE).write_text("{not json")
    reaped = reap_here(tmp_path)
    assert not [r for r in reaped.removed if "bare" in r or "garbled" in r]
    assert sorted(p.name for p in tmp_path.glob(WORKDIR_GLOB)) == [bare.name, garbled.name]


def test_the_image_inspection_container_carries_the_owner(
    helper: str, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen while its export is read: a session killed at that moment leaves it to the next one's reaping."""
    engine = Engine()
    owner = claim(engine)
    seen: list[dict[str, str]] = []

    def reader(chunks: Iterator[bytes]) -> dict[str, image_facts.FileEntry]:
        flt = {"label": [f"{LABEL_ID}={owner.id}", "sm-contract=inspect"]}
        seen.extend(c["Labels"] for c in docker_client.api.containers(all=True, filters=flt))
        return {}

    monkeypatch.setattr(image_facts, "_read_entries", reader)
    try:
        image_facts.read_image(engine, helper)
    finally:
        engine.client.close()
    [labels] = seen
    assert Owner.from_mapping(labels) == owner
    assert owner.keeper


def test_without_the_helper_image_the_owner_falls_back_to_its_pid_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(owner_module, "helper_image", lambda engine: (None, "no statically linked busybox"))
    monkeypatch.setattr(owner_module, "_KEEPERS", {})
    monkeypatch.setattr(owner_module, "_NO_KEEPER", {})
    engine = Engine()
    try:
        owner = claim(engine)
        reaped = reap_dead_sessions(engine, tmp_path)
    finally:
        engine.client.close()
    assert not owner.keeper
    assert engine.default_labels["sm-contract.owner.keeper"] == "0"
    assert reaped.warnings[0] == (
        "no keeper for this process on the engine (no statically linked busybox): if it is killed, only a later "
        "session on this host and in this PID namespace can remove its leftovers"
    )


def test_a_keeper_created_but_never_started_is_a_starting_session_then_a_leftover(
    helper: str, docker_client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session killed between creating its keeper and starting it: within the start grace its keeper
    still vouches (it may be starting), after it the keeper is removed."""
    owner_id = uuid.uuid4().hex[:16]
    created = docker_client.api.create_container(
        helper, entrypoint=["/bin/busybox", "cat"], labels={LABEL: "keeper", LABEL_KEEPER: owner_id}
    )
    try:
        keeper = f"container {docker_client.api.inspect_container(created['Id'])['Name'].lstrip('/')}"
        assert keeper not in reap_here(tmp_path).removed
        assert docker_client.api.inspect_container(created["Id"])["State"]["Status"] == "created"
        monkeypatch.setattr(owner_module, "KEEPER_START_GRACE_S", 0.0)
        assert keeper in reap_here(tmp_path).removed
        assert docker_client.api.containers(all=True, filters={"label": f"{LABEL_KEEPER}={owner_id}"}) == []
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_container(created["Id"], force=True)


def test_a_keeper_removed_from_outside_is_restarted_at_the_next_claim(docker_client: docker.DockerClient) -> None:
    engine = Engine()
    try:
        owner = claim(engine)
        mine = {"label": f"{LABEL_KEEPER}={owner.id}"}
        [first] = docker_client.api.containers(filters=mine)
        docker_client.api.remove_container(first["Id"], force=True)
        assert claim(engine) == owner
        [second] = docker_client.api.containers(filters=mine)
        assert second["Id"] != first["Id"]
        assert second["State"] == "running"
    finally:
        engine.client.close()


def test_a_session_that_starts_while_another_reaps_keeps_its_work_directory(
    victims: list[Victim],
    helper: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race seen under `pytest -n 2`: a session claims the engine and writes its work directory just after
    a reaper listed the keepers. Judged by that older list, the new directory had no live keeper and was
    removed under the running job. The new session starts exactly in that window here (a real process)."""
    listed = owner_module._live_keepers
    started: list[Victim] = []

    def list_then_start_a_session(engine: Engine) -> object:
        vouched = listed(engine)
        started.append(Victim([], helper, tmp_path))
        victims.append(started[-1])
        return vouched

    monkeypatch.setattr(owner_module, "_live_keepers", list_then_start_a_session)
    reaped = reap_here(tmp_path)
    [victim] = started
    assert not [r for r in reaped.removed if victim.tag in r], reaped.removed
    assert victim.resources(docker_client) == victim.all_resources()
