"""Nothing left behind, whatever stops the test process: SIGTERM, SIGHUP, Ctrl-C, SIGKILL (issue 11).

Each case runs a real pytest process with a job whose image ignores SIGTERM, waits for a marker file
the test writes once its container is up (an event, not a sleep), stops the process, and counts what
is left on the engine. SIGKILL leaves the container; the next session on the engine removes it, and
leaves a concurrent live session's alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from .conftest_helpers import IMAGES

USER_TEST = """
import pathlib
import pytest

IGNORE = "trap '' TERM; echo up; while :; do sleep 1; done"


@pytest.mark.sagemaker_job(entrypoint=["/bin/sh", "-c", IGNORE])
def test_blocks(training_job):
    job = training_job().start()
    assert job.wait_for_log("up", timeout=120)
    pathlib.Path({marker!r}).write_text("up")
    job.wait(3600)
"""


@pytest.fixture(scope="module")
def image(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "platform-probe")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Session:
    """A pytest process running USER_TEST, tagged so its containers can be counted."""

    def __init__(self, workdir: Path, image: str) -> None:
        self.tag = f"t{uuid.uuid4().hex[:8]}"
        self.dir = workdir / self.tag
        self.dir.mkdir()
        self.marker = self.dir / "up"
        (self.dir / "test_block.py").write_text(USER_TEST.format(marker=str(self.marker)))
        env = {**os.environ, "SM_CONTRACT_RUN_ID": self.tag}
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--sm-no-suite"),
                *(f"--sm-image={image}", "--sm-grace=120", "test_block.py"),
            ],
            cwd=self.dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            # As a terminal's pytest: a shell without job control starts background commands (`cmd &`, a CI
            # step's) with SIGINT ignored, and Python then raises no KeyboardInterrupt for it.
            preexec_fn=_default_sigint,
        )

    def wait_until_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            assert self.proc.poll() is None, f"pytest ended early:\n{self.proc.communicate()[0]}"
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


def containers(client: docker.DockerClient, tag: str) -> list[dict[str, object]]:
    """The session's job containers (each host's credentials pod, which shares its network, left out)."""
    found = client.api.containers(all=True, filters={"label": f"sm-contract.tag={tag}"})
    return [c for c in found if not str(c["Names"][0]).endswith("-pod")]


def everything(client: docker.DockerClient, tag: str) -> list[dict[str, object]]:
    """Every container of the session, credentials pods included: what cleanup must remove."""
    return client.api.containers(all=True, filters={"label": f"sm-contract.tag={tag}"})


@pytest.fixture
def sessions(tmp_path: Path, image: str, docker_client: docker.DockerClient) -> Iterator[Callable[[], Session]]:
    started: list[Session] = []

    def start() -> Session:
        session = Session(tmp_path, image)
        started.append(session)
        return session

    yield start
    for session in started:
        if session.proc.poll() is None:
            session.proc.kill()
            session.proc.communicate()
        for container in containers(docker_client, session.tag):
            docker_client.api.remove_container(container["Id"], force=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_test_process_removes_its_containers(
    sessions: Callable[[], Session], docker_client: docker.DockerClient, signum: signal.Signals
) -> None:
    session = sessions()
    session.wait_until_up()
    assert len(containers(docker_client, session.tag)) == 1
    session.proc.send_signal(signum)
    code, out = session.finish()
    assert code == pytest.ExitCode.INTERRUPTED, out
    assert everything(docker_client, session.tag) == [], out
    assert "Traceback" not in out
    assert not list(Path(tempfile.gettempdir()).glob(f"sm-contract-{session.tag}-*"))


def test_sigkill_leftovers_are_removed_by_the_next_session_but_a_live_one_is_kept(
    sessions: Callable[[], Session], docker_client: docker.DockerClient, pytester: pytest.Pytester, image: str
) -> None:
    live, killed = sessions(), sessions()
    live.wait_until_up()
    killed.wait_until_up()
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.finish()
    assert len(containers(docker_client, killed.tag)) == 1, "SIGKILL cannot clean up: the container stays"
    assert list(Path(tempfile.gettempdir()).glob(f"sm-contract-{killed.tag}-*"))

    pytester.makepyfile("def test_platform(sagemaker_platform):\n    assert sagemaker_platform.engine\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-image={image}", "--sm-no-suite")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*removed * leftover(s) of sessions that died before cleaning up*"])
    assert everything(docker_client, killed.tag) == []
    assert not list(Path(tempfile.gettempdir()).glob(f"sm-contract-{killed.tag}-*"))

    [still] = containers(docker_client, live.tag)
    assert still["State"] == "running"
    live.proc.send_signal(signal.SIGTERM)
    code, out = live.finish()
    assert code == pytest.ExitCode.INTERRUPTED, out
    assert everything(docker_client, live.tag) == []
