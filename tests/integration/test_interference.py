"""Interference from outside the platform is the environment's fault, never the image's pass or fail (issue 22).

Someone else's `docker kill -s TERM`, `docker restart` or `docker pause` of a training container, done by
docker-py from the test at a point the test knows (after a log line, or once the platform's SIGTERM has gone
out): the job fails as an engine fault naming what happened, and the check reports an environment fault.
No sleeps: log lines and the synchronous stop() are the synchronisation.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.contract import CheckContext
from pytest_sagemaker_contract.contract.stopping import _stopped_verdict
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.platform.logs import (
    claim_log_dir,
    durable_log_dir,
    log_root,
    reap_dead_log_dirs,
    release_log_dir,
)

from .conftest_helpers import IMAGES, assert_environment_fault, job_spec

pytestmark = [pytest.mark.usefixtures("no_leftovers"), pytest.mark.local_platform(grace_s=60)]


@pytest.fixture(scope="module")
def epochs(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "epochs")


def the_fault(result: TrainingJobResult, pattern: str) -> str:
    """The one engine fault, matching `pattern`, carried everywhere an environment fault must show."""
    assert result.TrainingJobStatus == "Failed", result.describe()
    assert len(result.engine_faults) == 1, result.engine_faults
    fault = result.engine_faults[0]
    assert re.fullmatch(pattern, fault), fault
    assert result.FailureReason == f"InternalServerError: {fault}"
    assert "AlgorithmError" not in (result.FailureReason or "")
    assert result.timeline.interference == [fault]
    assert result.timeline.as_dict()["interference"] == [fault]
    assert f"engine fault, not the image's: {fault}" in result.warnings
    return fault


def assert_check_reports_the_environment(suite: CheckContext, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    assert "from outside the platform" in assert_environment_fault(suite, excinfo)


def test_outside_sigterm_while_training_never_passes_sm_run_default(
    platform: TrainingPlatform,
    epochs: str,
    docker_client: docker.DockerClient,
    contract_check: Callable[[str], CheckContext],
) -> None:
    """The image saves and exits 0 on SIGTERM: without the platform's eye this was `Completed in 2 s`."""
    job = platform.start(job_spec(epochs, "outside-term", environment={"EPOCHS": "30"}))
    with job:
        assert job.wait_for_log(r"^epoch 2$", timeout=60) is not None
        (container,) = job.container_ids
        docker_client.api.kill(container, "SIGTERM")
        result = job.wait(timeout=120)
    assert result.hosts[0].exit_code == 0  # the image did what it should on SIGTERM
    assert result.timeline.sigterm_sent is None  # … but the platform never sent one
    the_fault(
        result,
        r"container sm-\S+ was sent SIGTERM from outside the platform at \d+\.\d s "
        r"\(docker kill, docker stop or docker restart\?\) while training",
    )
    assert any(line.startswith("SIGTERM: saving after ") for line in result.logs.splitlines())
    suite = contract_check("SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert_check_reports_the_environment(suite, excinfo)
    assert "sent SIGTERM from outside the platform" in str(excinfo.value)


def test_outside_restart_while_training_is_an_environment_fault(
    platform: TrainingPlatform,
    epochs: str,
    docker_client: docker.DockerClient,
    contract_check: Callable[[str], CheckContext],
) -> None:
    """`docker restart`: SIGTERM, exit, start again. Whichever run the platform saw end, it is not the image's."""
    job = platform.start(job_spec(epochs, "outside-restart", environment={"EPOCHS": "6"}))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        (container,) = job.container_ids
        docker_client.api.restart(container, timeout=10)
        result = job.wait(timeout=120)
    the_fault(
        result,
        r"container sm-\S+ was (sent SIGTERM|stopped|restarted) from outside the platform at \d+\.\d s "
        r"\((docker kill, docker stop or docker restart|docker stop|docker restart)\?\) while training",
    )
    suite = contract_check("SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert_check_reports_the_environment(suite, excinfo)


def test_outside_pause_during_the_grace_is_not_blamed_on_the_handler(
    platform: TrainingPlatform,
    epochs: str,
    docker_client: docker.DockerClient,
    contract_check: Callable[[str], CheckContext],
) -> None:
    """The handler needs 2 s of a 5-s grace; frozen by someone's `docker pause`, it is SIGKILLed at 5 s."""
    job = platform.start(job_spec(epochs, "outside-pause", environment={"EPOCHS": "30", "SAVE_S": "2"}))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        (container,) = job.container_ids
        job.stop(grace=5)  # SIGTERM has gone out when stop() returns
        assert job.wait_for_log(r"^SIGTERM: saving", timeout=30) is not None
        docker_client.api.pause(container)
        result = job.wait(timeout=120)
    assert result.killed, "the platform's SIGKILL at the end of the grace ended the frozen handler"
    fault = the_fault(
        result,
        r"container sm-\S+ was paused from outside the platform at \d+\.\d s \(docker pause\?\) "
        r"during the SIGTERM grace period for \d+\.\d s, until the platform's SIGKILL resumed it",
    )
    assert "saved" not in result.logs.splitlines()
    suite = contract_check("SM-SIG-TERM")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        _stopped_verdict(suite, result, 5, "SIGTERM at log line 'epoch 1'")
    assert_check_reports_the_environment(suite, excinfo)
    assert fault in str(excinfo.value)


def test_the_platforms_own_signals_are_not_interference(platform: TrainingPlatform, epochs: str) -> None:
    """Control: a run that completes, a StopTrainingJob the handler honours and one that ends in SIGKILL."""
    completed = platform.run(job_spec(epochs, "own-complete", environment={"EPOCHS": "1"}))
    assert completed.TrainingJobStatus == "Completed", completed.describe()
    job = platform.start(job_spec(epochs, "own-stop", environment={"EPOCHS": "30"}))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        job.stop(grace=30)
        stopped = job.wait(timeout=120)
    assert stopped.TrainingJobStatus == "Stopped", stopped.describe()
    job = platform.start(job_spec(epochs, "own-kill", environment={"EPOCHS": "30", "SAVE_S": "30"}))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        job.stop(grace=2)
        killed = job.wait(timeout=120)
    assert killed.TrainingJobStatus == "Stopped", killed.describe()
    assert killed.killed
    for result in (completed, stopped, killed):
        assert result.engine_faults == [], result.engine_faults
        assert result.timeline.interference == []


# -- item 8: the log root, log folders of dead sessions, an interrupted xdist controller ---------------


@pytest.mark.parametrize("squatter", ["link", "other user"])
def test_a_log_root_someone_else_made_is_never_written_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squatter: str
) -> None:
    """In a shared /tmp another user can make `sm-contract-logs-<uid>` first, or a link there, to read the logs."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    squatted = tmp_path / f"sm-contract-logs-{os.getuid()}"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o777)
    if squatter == "link":
        squatted.symlink_to(theirs)
    else:
        if os.getuid() != 0:
            pytest.skip("making a directory another user owns needs root (CI runs these tests as root)")
        squatted.mkdir()
        squatted.chmod(0o777)
        os.chown(squatted, 65534, 65534)
    folder = durable_log_dir("run1")
    root = folder.parent
    assert root.parent == tmp_path
    assert root.name.startswith(f"sm-contract-logs-{os.getuid()}-"), root
    info = os.lstat(root)
    assert stat.S_ISDIR(info.st_mode)
    assert info.st_uid == os.getuid()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert list(theirs.iterdir()) == []
    assert durable_log_dir("run2").parent == root  # one private root per process, not one per job


def test_log_folders_of_dead_sessions_are_reaped_live_and_kept_ones_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    die = (
        "import os, signal\n"
        "from pytest_sagemaker_contract.platform.logs import claim_log_dir\n"
        "(claim_log_dir('dead-run') / 'job.log').write_text('x')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    died = subprocess.run([sys.executable, "-c", die], env={**os.environ, "TMPDIR": str(tmp_path)}, check=False)
    assert died.returncode == -signal.SIGKILL
    dead = log_root() / "dead-run"
    assert (dead / "job.log").is_file()
    live = claim_log_dir("live-run")
    kept = claim_log_dir("kept-run")
    (kept / "check.log").write_text("kept")
    release_log_dir("kept-run")  # a session that ended in order: what is left was kept on purpose
    assert reap_dead_log_dirs() == [f"log folder {dead}"]
    assert not dead.exists()
    assert live.is_dir()
    assert (kept / "check.log").read_text() == "kept"


XDIST_TEST = """
import os, pathlib
import pytest

IGNORE = "trap '' TERM; echo up; while :; do sleep 1; done"


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.sagemaker_job(entrypoint=["/bin/sh", "-c", IGNORE])
def test_blocks(training_job, n):
    job = training_job().start()
    assert job.wait_for_log("up", timeout=120)
    pathlib.Path(f"up-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])
    job.wait(3600)
"""


def test_sigterm_to_the_xdist_controller_alone_leaves_no_containers(
    tmp_path: Path, example_image: Callable[[str | Path], str], docker_client: docker.DockerClient, no_leftovers: str
) -> None:
    """Only the controller gets SIGTERM (a CI runner's cancel of the main pid): xdist kills workers that take
    over 10 s to end; what they leave is removed by the controller, not left to a later session."""
    image = example_image(IMAGES / "platform-probe")
    (tmp_path / "test_block.py").write_text(XDIST_TEST)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-n", "2"),
            *(f"--sm-image={image}", "--sm-no-suite", "--sm-grace=120", "test_block.py"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not ((tmp_path / "up-1").exists() and (tmp_path / "up-2").exists()):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the jobs never started"
            time.sleep(0.1)  # polling for the marker files the jobs write: an event, not a fixed wait
        labelled = {"label": f"sm-contract.tag={no_leftovers}"}
        running = docker_client.api.containers(filters=labelled)
        assert len([c for c in running if not c["Names"][0].endswith("-pod")]) == 2  # each with its credentials pod
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert docker_client.api.containers(all=True, filters=labelled) == [], out
    assert [p.name for p in log_root().glob(f"{no_leftovers}-*")] == [], "the workers' log folders are left"


def test_a_work_directory_removed_by_another_process_is_an_environment_fault(
    platform: TrainingPlatform, epochs: str, contract_check: Callable[[str], CheckContext]
) -> None:
    """Another process cleaning the temporary directory removed a running job's work directory (seen under
    `pytest -n 2`): the job ends Failed with that named as an engine fault, not a crashed job thread."""
    job = platform.start(job_spec(epochs, "workdir-removed", environment={"EPOCHS": "30"}))
    with job:
        assert job.wait_for_log(r"^epoch 1$", timeout=60) is not None
        subprocess.run(["rm", "-rf", str(job.job_dir)], check=True)
        job.stop(grace=10)
        result = job.wait(timeout=120)
    assert result.TrainingJobStatus == "Failed", result.describe()
    [fault] = result.engine_faults
    assert fault == (
        f"the job's work directory {job.job_dir} was removed from outside the platform while the job ran "
        "(another process cleaning the temporary directory?)"
    )
    assert result.FailureReason == f"InternalServerError: {fault}"
    suite = contract_check("SM-RUN-DEFAULT")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        suite.expect_completed(result, "docker run IMAGE train")
    assert "environment fault, not the image's: the job's work directory" in str(excinfo.value)
    Path(suite.note.log_path).unlink(missing_ok=True)
