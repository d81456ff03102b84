"""The engine data path (/opt/ml through volumes and the archive endpoints), on the local engine (forced)
and on a non-local engine (.ci/remote-engine: its own /tmp and network), and the topology
detection that chooses between it and bind mounts."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform
from pytest_sagemaker_contract.platform.data_path import detect_topology
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from ..helpers import KMEANS_SUITE_ARGS
from .conftest_helpers import IMAGES, REMOTE_HOST, job_leftovers, job_spec, outcomes_by_check, run_suite

#: The project's own copy of a non-local engine (.ci/run starts it too): own /tmp, own network, a unix socket.


# -- engines ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def on_remote(docker_client: docker.DockerClient, remote_engine: docker.DockerClient) -> Callable[[str], str]:
    """Copy a locally built image to the remote engine (once), as `docker save | docker load` does."""

    def load(tag: str) -> str:
        local_id = docker_client.images.get(tag).id
        try:
            if remote_engine.images.get(tag).id == local_id:
                return tag
        except docker.errors.ImageNotFound:
            pass
        remote_engine.images.load(b"".join(docker_client.api.get_image(tag)))
        return tag

    return load


def _platform(client: Any, workdir: Path, data_path: str) -> TrainingPlatform:
    engine = Engine(client)
    s3 = S3Server().start()
    s3.ensure_bucket(CHANNEL_BUCKET)
    return TrainingPlatform(engine, s3, workdir, grace_s=5, data_path=data_path, checkpoint_sync_s=0.3)


@pytest.fixture(scope="module", params=["local-forced", "remote"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[TrainingPlatform]:
    """The engine data path on the local engine (forced) and on the non-local engine (where it is the only one)."""
    client = request.getfixturevalue("remote_engine") if request.param == "remote" else docker.from_env(timeout=300)
    plat = _platform(client, tmp_path_factory.mktemp("data-path"), "engine")
    plat.target = request.param  # type: ignore[attr-defined]
    try:
        yield plat
    finally:
        plat.close()
        plat.s3.stop()
        labelled = {"label": f"{LABEL_RUN}={plat.run_id}"}
        assert plat.engine.api.containers(all=True, filters=labelled) == [], "containers left behind"
        assert (plat.engine.api.volumes(filters=labelled).get("Volumes") or []) == [], "volumes left behind"


@pytest.fixture(scope="module")
def probe(
    platform: TrainingPlatform, example_image: Callable[[str | Path], str], request: pytest.FixtureRequest
) -> str:
    tag = example_image(IMAGES / "data-path-probe")
    if platform.target == "remote":  # type: ignore[attr-defined]
        return str(request.getfixturevalue("on_remote")(tag))
    return tag


def spec_for(image: str, mode: str, **overrides: Any) -> TrainingJobSpec:
    return job_spec(image, f"dp-{mode}", environment={"MODE": mode}, **overrides)


def model_members(plat: TrainingPlatform, uri: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(plat.s3.get_bytes(uri)), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


# -- topology --------------------------------------------------------------------------------------


def test_topology_local_engine_shares_the_filesystem(docker_client: docker.DockerClient) -> None:
    topology = detect_topology(Engine(docker.from_env()), "topology-test")
    assert topology.shared_fs is True, topology
    assert topology.gateway is not None
    line = topology.header("bind", False, None)
    assert "filesystem shared: bind mounts" in line
    assert "S3 reachable from containers" in line


def test_topology_remote_engine_shares_nothing(
    remote_engine: docker.DockerClient,
    on_remote: Callable[[str], str],
    example_image: Callable[[str | Path], str],
    remote_private_tmp: Path,
) -> None:
    image = on_remote(example_image(IMAGES / "data-path-probe"))
    topology = detect_topology(Engine(remote_engine), "topology-test", [image])
    assert topology.shared_fs is False, topology
    assert topology.gateway is None
    assert topology.has_bridge
    line = topology.header("engine", False, None)
    assert "filesystem not shared" in line
    assert "moves through the Docker API" in line
    assert topology.relay  # CI installs busybox-static: the relay takes S3 into the engine
    assert "S3 reachable from containers through a relay over the Docker API" in line


# -- the engine data path ----------------------------------------------------------------------------


def test_config_channels_model_and_output_round_trip(platform: TrainingPlatform, probe: str, tmp_path: Path) -> None:
    """Config files and a File channel arrive; root-written 0600 and setuid files and a 0700 directory
    arrive intact in model.tar.gz; output/data becomes output.tar.gz."""
    data = tmp_path / "train"
    data.mkdir()
    (data / "a.csv").write_text("1,2")
    spec = spec_for(probe, "model", hyperparameters={"epochs": "3"}, channel_uris={"train": f"s3://{CHANNEL_BUCKET}/x"})
    result = platform.start(spec, local_channels={"train": data}).wait(120)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert 'CONFIG {"epochs": "3"}' in result.logs
    assert "READ a.csv 1,2" in result.logs
    members = model_members(platform, result.ModelArtifacts["S3ModelArtifacts"])
    assert (members["secret"].mode & 0o7777, members["secret"].uid) == (0o600, 0)
    assert members["tool"].mode & 0o7777 == 0o4755
    assert members["private"].isdir()
    assert members["private"].mode & 0o7777 == 0o700
    assert "private/x" in members
    assert result.output_files == ["o.txt"]
    assert not list(platform.workdir.iterdir()), "job directory left behind"


def test_fastfile_is_read_only(platform: TrainingPlatform, probe: str, tmp_path: Path) -> None:
    data = tmp_path / "train"
    data.mkdir()
    (data / "f.txt").write_text("fast")
    spec = spec_for(probe, "fastfile", input_mode="FastFile", channel_uris={"train": f"s3://{CHANNEL_BUCKET}/y"})
    result = platform.start(spec, local_channels={"train": data}).wait(120)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "READ f.txt fast" in result.logs
    assert "READONLY" in result.logs
    assert "WRITABLE" not in result.logs


def test_user_files_are_untouched(platform: TrainingPlatform, probe: str, tmp_path: Path) -> None:
    """A File channel is writable inside the container (as on SageMaker) but the user's files never change."""
    data = tmp_path / "train"
    data.mkdir()
    (data / "a.csv").write_text("keep me")
    os.chmod(data / "a.csv", 0o640)
    before = os.stat(data / "a.csv")
    spec = spec_for(probe, "attack", channel_uris={"train": f"s3://{CHANNEL_BUCKET}/z"})
    result = platform.start(spec, local_channels={"train": data}).wait(120)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "ATTACKED" in result.logs
    after = os.stat(data / "a.csv")
    assert (data / "a.csv").read_text() == "keep me"
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
        before.st_mtime_ns,
    )


def test_checkpoints_restored_and_kept_after_sigkill(platform: TrainingPlatform, probe: str) -> None:
    uri = f"s3://{CHANNEL_BUCKET}/ckpt-{job_name('c')}"
    platform.s3.client().put_object(Bucket=CHANNEL_BUCKET, Key=uri.split("/", 3)[3] + "/old.txt", Body=b"old")
    spec = spec_for(probe, "ckpt", checkpoint_s3_uri=uri)
    job = platform.start(spec)
    assert job.wait_for_log("^saved", timeout=60) is not None, job.logs()
    key = uri.split("/", 3)[3] + "/c.txt"
    deadline = time.monotonic() + 30
    while platform.s3.head(f"s3://{CHANNEL_BUCKET}/{key}") is None:  # synced while training
        assert time.monotonic() < deadline, "checkpoint not synced during training"
        time.sleep(0.1)
    job.stop(grace=1.0)  # the probe ignores SIGTERM: SIGKILL after the grace
    result = job.wait(60)
    assert result.hosts[0].killed, result.log_tail()
    assert "RESTORED old.txt" in result.logs
    assert result.checkpoints_restored == ["old.txt"]
    assert platform.s3.get_bytes(f"s3://{CHANNEL_BUCKET}/{key}") == b"step1\n"


def test_failure_reason_and_two_hosts(platform: TrainingPlatform, probe: str) -> None:
    failed = platform.run(spec_for(probe, "fail"), timeout=60)
    assert failed.TrainingJobStatus == "Failed"
    assert failed.FailureReason is not None
    assert "boom: bad input" in failed.FailureReason
    assert "exit code: 3" in failed.FailureReason
    two = platform.run(spec_for(probe, "fastfile", instance_count=2), timeout=120)
    assert two.TrainingJobStatus == "Completed", two.log_tail()
    assert two.model_files == ["m"]
    assert two.model_clashes == []


def test_pipe_mode_fifos_fed_inside_the_engine(
    platform: TrainingPlatform, example_image: Callable[[str | Path], str], request: pytest.FixtureRequest
) -> None:
    """Pipe mode on the engine path: `<channel>_0` there at the start, each next FIFO after the previous
    epoch's EOF, the bytes exact, a reader that never opens one does not hang the job, no helper left."""
    reader = example_image(IMAGES / "pipe-reader")
    if platform.target == "remote":  # type: ignore[attr-defined]
        reader = request.getfixturevalue("on_remote")(reader)
    prefix = f"pipe-{os.urandom(4).hex()}"
    payload = {"a.rec": b"first," + os.urandom(3 << 20), "b.rec": b"second"}
    for key, body in payload.items():
        platform.s3.client().put_object(Bucket=CHANNEL_BUCKET, Key=f"{prefix}/{key}", Body=body)
    uri = f"s3://{CHANNEL_BUCKET}/{prefix}"
    spec = parse_request(
        with_overrides(None, name=job_name("dp-pipe"), image=reader, channel_uris={"train": uri}, input_mode="Pipe")
    )
    result = platform.run(spec, timeout=300)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.model_files == ["epoch0", "epoch1", "epoch2"]
    with tarfile.open(fileobj=io.BytesIO(result.model_tar()), mode="r:gz") as tar:
        epochs = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert epochs == {f"epoch{i}": payload["a.rec"] + payload["b.rec"] for i in range(3)}
    assert "channel directory exists" not in result.logs
    never = parse_request(
        with_overrides(
            None,
            name=job_name("dp-pipe-never"),
            image=reader,
            channel_uris={"train": uri},
            input_mode="Pipe",
            environment={"MODE": "never"},
        )
    )
    assert platform.run(never, timeout=300).TrainingJobStatus == "Completed"
    assert job_leftovers(platform) == []


# -- the built-in suite, local vs remote ---------------------------------------------------------------


SUITE_ARGS = (
    *KMEANS_SUITE_ARGS,
    "--sm-resume-log=resuming from checkpoint after epoch [0-9]+",  # SM-SPOT-RESTART's evidence on every data path
    "--sm-input-modes=File,FastFile",
    "--sm-instance-count=2",
)


def _suite(pytester: pytest.Pytester, image: str, *args: str) -> tuple[pytest.RunResult, dict[str, str]]:
    report = pytester.path / f"report-{len(list(pytester.path.glob('report-*')))}.json"
    result = run_suite(pytester, f"--sm-image={image}", f"--sm-report={report}", *args)
    return result, {k: v[0] for k, v in outcomes_by_check(json.loads(report.read_text())).items()}


def test_kmeans_suite_same_verdicts_on_remote_engine_and_forced_engine_path(
    pytester: pytest.Pytester,
    example_image: Callable[[str], str],
    on_remote: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    remote_private_tmp: Path,
) -> None:
    image = example_image("kmeans")
    on_remote(image)
    local, local_verdicts = _suite(pytester, image, *SUITE_ARGS)
    local.stdout.fnmatch_lines(["*sagemaker-contract: engine *: filesystem shared: bind mounts*S3 reachable*"])
    forced, forced_verdicts = _suite(pytester, image, *SUITE_ARGS, "--sm-data-path=engine")
    forced.stdout.fnmatch_lines(
        ["*filesystem shared: /opt/ml moves through the Docker API*(forced by --sm-data-path)*"]
    )
    monkeypatch.setenv("DOCKER_HOST", REMOTE_HOST)
    remote, remote_verdicts = _suite(pytester, image, *SUITE_ARGS)
    remote.stdout.fnmatch_lines(
        [
            "*sagemaker-contract: engine unix:///run/sm-remote-engine/docker.sock: "
            "filesystem not shared*S3 reachable from containers through a relay*"
        ]
    )
    assert local_verdicts["SM-RUN-DEFAULT"] == "passed", local.stdout.str()[-3000:]
    assert forced_verdicts == local_verdicts, forced.stdout.str()[-3000:]
    assert remote_verdicts == local_verdicts, remote.stdout.str()[-3000:]
    assert not any(remote_private_tmp.glob("sm-contract-marker-*"))


def test_image_that_calls_s3_reaches_it_on_a_non_local_engine_through_the_relay(
    pytester: pytest.Pytester,
    example_image: Callable[[str | Path], str],
    on_remote: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    remote_private_tmp: Path,
) -> None:
    """Deliverable 3: an image that calls S3 itself (AWS_ENDPOINT_URL_S3) gets the same verdict on an engine
    whose containers cannot reach this process as on the local one, through the relay; the header says so;
    a `sagemaker_needs_s3` test runs there instead of skipping."""
    image = example_image(IMAGES / "data-path-probe")
    on_remote(image)
    args = ("--sm-env=MODE=s3", "--sm-grace=5", "--sm-timeout=120", "-k", "SM-RUN-DEFAULT or SM-RUN-BOTH")
    local, local_verdicts = _suite(pytester, image, *args)
    assert local_verdicts["SM-RUN-DEFAULT"] == "passed", local.stdout.str()[-3000:]
    monkeypatch.setenv("DOCKER_HOST", REMOTE_HOST)
    remote, remote_verdicts = _suite(pytester, image, *args, "--sm-needs-s3")
    remote.stdout.fnmatch_lines(["*filesystem not shared*S3 reachable from containers through a relay*"])
    assert remote_verdicts == local_verdicts, remote.stdout.str()[-3000:]
    pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.sagemaker_needs_s3
        def test_calls_s3(training_job, sm_image):
            result = training_job(sm_image, environment={"MODE": "s3"}).run()
            assert result.TrainingJobStatus == "Completed", result.log_tail()
            assert "S3 REACHED" in result.logs
        """
    )
    own = pytester.runpytest_subprocess("-p", "no:randomly", f"--sm-image={image}", "--sm-no-suite", "test_own.py")
    own.assert_outcomes(passed=1)
    client = docker.DockerClient(base_url=REMOTE_HOST)
    try:
        assert client.containers.list(all=True, filters={"name": "sm-s3-relay"}) == []
    finally:
        client.close()


def test_engine_data_path_mounts_no_host_paths(tmp_path: Path) -> None:
    """Nothing in the engine path names a host path: the only bind mounts are the (optional) GPU driver's."""
    from pytest_sagemaker_contract.platform.data_path import engine_mounts
    from pytest_sagemaker_contract.platform.layout import HostLayout

    mounts = engine_mounts(HostLayout(tmp_path / "algo-1", "/opt/ml/checkpoints"), {"train": "vol"})
    assert all(m.type == "volume" for m in mounts)
    assert {m.target for m in mounts} == {
        "/opt/ml/input",
        "/opt/ml/model",
        "/opt/ml/output",
        "/opt/ml/checkpoints",
        "/opt/ml/input/data/train",
    }
