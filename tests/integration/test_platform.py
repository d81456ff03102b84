"""The local training platform alone (no plugin) on the real Docker engine and a real moto S3 server.

Every observation is made from inside the container (the probe image prints what it was given), so
these tests prove what a training image really sees, not what the platform meant to do.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.platform.layout import (
    assign_hosts,
    hyperparameters_json,
    input_data_config_json,
    resource_config_json,
)
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from .conftest_helpers import IMAGES, job_leftovers, job_spec

PROBE = "/opt/program/probe"
ALT = "/usr/local/bin/alt"

pytestmark = [pytest.mark.usefixtures("no_leftovers", "clean_workdir"), pytest.mark.local_platform(grace_s=30)]


@pytest.fixture
def clean_workdir(platform: TrainingPlatform) -> Iterator[None]:
    """Each job removes its host directories and containers when it ends."""
    yield
    assert list(platform.workdir.iterdir()) == [], "job directory left behind"
    assert job_leftovers(platform) == []


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "platform-probe")


@pytest.fixture(scope="module")
def no_train(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "platform-no-train")


def make_spec(image: str, prefix: str, mode: str = "ok", **overrides: Any) -> TrainingJobSpec:
    env = {"MODE": mode, **overrides.pop("environment", {})}
    return job_spec(image, prefix, environment=env, **overrides)


def seed(platform: TrainingPlatform, prefix: str, keys: list[str]) -> str:
    """Put one small object per key under a prefix unique to the caller; return that prefix's URI."""
    client = platform.s3.client()
    for key in keys:
        client.put_object(Bucket=CHANNEL_BUCKET, Key=f"{prefix}/{key}", Body=f"content of {key}".encode())
    return f"s3://{CHANNEL_BUCKET}/{prefix}"


def lines(result: TrainingJobResult, tag: str) -> list[str]:
    return [line[len(tag) + 1 :] for line in result.logs.splitlines() if line.startswith(f"{tag} ")]


def tar_members(platform: TrainingPlatform, uri: str) -> dict[str, bytes]:
    data = platform.s3.get_bytes(uri)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


# -- invocation (contract.md §1) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entrypoint", "arguments", "seen"),
    [
        pytest.param(None, None, ("ARGV", f"{PROBE} argc=1 [train]", f"/bin/sh {PROBE} train"), id="nothing"),
        pytest.param([ALT], None, ("ALT", f"{ALT} argc=0 []", f"/bin/sh {ALT}"), id="entrypoint-only"),
        pytest.param(
            None, ["--epochs", "3"], ("ARGV", f"{PROBE} argc=2 [--epochs 3]", f"/bin/sh {PROBE} --epochs 3"), id="args"
        ),
        pytest.param([ALT], ["a b", "c"], ("ALT", f"{ALT} argc=2 [a b c]", f"/bin/sh {ALT} a b c"), id="both"),
    ],
)
def test_invocation_shapes(
    platform: TrainingPlatform,
    probe: str,
    entrypoint: list[str] | None,
    arguments: list[str] | None,
    seen: tuple[str, str, str],
) -> None:
    """`train` only when nothing is set; an overridden entrypoint drops the image CMD; PID 1 is the program."""
    tag, argv, pid1 = seen
    result = platform.run(make_spec(probe, "shape", entrypoint=entrypoint, arguments=arguments), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert lines(result, tag) == [argv]
    assert "from-image-cmd" not in result.logs
    assert lines(result, "PID1") == [pid1 + " "]  # the program itself, no docker-init/tini


# -- what the container is given (§2, §4) -------------------------------------------------------


def test_config_env_and_hostname_inside_the_container(platform: TrainingPlatform, probe: str) -> None:
    uri = seed(platform, "config-env", ["a.csv"])
    spec = make_spec(
        probe,
        "config",
        hyperparameters={"epochs": "3", "lr": "0.1"},
        environment={"MY_SETTING": "on"},
        channel_uris={"train": uri},
    )
    result = platform.run(spec, timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    host = assign_hosts(spec)[0]
    configs = {name: json.loads(text) for name, _, text in (line.partition(" ") for line in lines(result, "CONFIG"))}
    assert configs == {
        "hyperparameters.json": hyperparameters_json(spec),
        "inputdataconfig.json": input_data_config_json(spec, host),
        "resourceconfig.json": resource_config_json(spec, host),
    }
    env = dict(line.partition("=")[::2] for line in lines(result, "ENV"))
    assert env["TRAINING_JOB_NAME"] == spec.name
    assert env["TRAINING_JOB_ARN"] == f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{spec.name.lower()}"
    assert env["TRAINING_JOB_ARN"] == result.TrainingJobArn
    assert (env["MY_SETTING"], env["MODE"]) == ("on", "ok")
    assert not [k for k in env if k.startswith("SM_")]
    [hostname] = lines(result, "HOST")  # the instance's name, as on SageMaker; algo-1 is current_host (§7)
    assert re.fullmatch(r"ip-10-0-\d+-\d+", hostname), hostname
    assert lines(result, "CODE") == ["shipped-by-image"]  # /opt/ml/code from the image is not mounted over


# -- channels (§3) ------------------------------------------------------------------------------


def test_file_channel_staged_relative_to_the_prefix(platform: TrainingPlatform, probe: str) -> None:
    base = "staging/ds"
    client = platform.s3.client()
    uri = seed(platform, base, ["train/a.csv", "train/sub/b.csv", "train-extra.csv", "other/c.csv"])
    client.put_object(Bucket=CHANNEL_BUCKET, Key=f"{base}/train/empty/", Body=b"")  # a console "folder"
    spec = make_spec(probe, "file-channel", channel_uris={"train": f"{uri}/train"})
    result = platform.run(spec, timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    root = "/opt/ml/input/data/train"
    assert lines(result, "DATA") == [
        "/opt/ml/input/data",
        root,
        f"{root}/a.csv",
        f"{root}/sub",
        f"{root}/sub/b.csv",
        f"{root}/train-extra.csv",
    ]
    assert lines(result, "WRITE") == [f"{root}/ ok"]  # File channels are writable, unlike FastFile
    assert sorted(result.hosts[0].channels[0].files) == ["a.csv", "sub/b.csv", "train-extra.csv"]


def test_fastfile_channel_is_read_only(platform: TrainingPlatform, probe: str) -> None:
    uri = seed(platform, "fastfile/ds", ["x.bin"])
    req = with_overrides(
        None, name=job_name("fastfile"), image=probe, environment={"MODE": "ok"}, channel_uris={"ff": uri}
    )
    req["InputDataConfig"][0]["InputMode"] = "FastFile"
    result = platform.run(parse_request(req), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "/opt/ml/input/data/ff/x.bin" in lines(result, "DATA")
    assert lines(result, "WRITE") == ["/opt/ml/input/data/ff/ refused"]
    assert result.hosts[0].channels[0].read_only is True


def test_empty_channel_prefix_fails_before_any_container_runs(platform: TrainingPlatform, probe: str) -> None:
    uri = f"s3://{CHANNEL_BUCKET}/nothing-here/train"
    result = platform.run(make_spec(probe, "empty-channel", channel_uris={"train": uri}), timeout=60)
    assert result.TrainingJobStatus == "Failed"
    assert result.FailureReason is not None
    assert result.FailureReason.startswith("ClientError: No S3 objects found under S3 URL")
    assert uri in result.FailureReason
    assert result.timeline.started is None
    assert result.exit_code is None
    assert result.logs == ""


def test_client_error_host_has_no_exit_code(platform: TrainingPlatform, probe: str) -> None:
    uri = f"s3://{CHANNEL_BUCKET}/nothing-here/eval"
    result = platform.run(make_spec(probe, "empty-channel", channel_uris={"eval": uri}), timeout=60)
    assert result.TrainingJobStatus == "Failed"
    assert (result.hosts[0].exit_code, result.timeline.exited) == (None, None)


def test_checkpoints_round_trip_through_s3(platform: TrainingPlatform, probe: str) -> None:
    """What the checkpoint URI holds is there at start; what the job writes there reaches S3."""
    uri = seed(platform, "ckpt/job", ["epoch-1.ckpt"])
    script = "ls /opt/ml/checkpoints; echo two > /opt/ml/checkpoints/epoch-2.ckpt"
    spec = make_spec(probe, "ckpt", checkpoint_s3_uri=uri, entrypoint=["/bin/sh"], arguments=["-c", script])
    result = platform.run(spec, timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.logs.split() == ["epoch-1.ckpt"]
    assert platform.s3.get_bytes(f"{uri}/epoch-2.ckpt") == b"two\n"


# -- outcomes and artifacts (§3, §6) -------------------------------------------------------------


def test_exit_zero_completes_and_uploads_the_model(platform: TrainingPlatform, probe: str) -> None:
    spec = make_spec(probe, "ok")
    result = platform.run(spec, timeout=60)
    assert (result.TrainingJobStatus, result.SecondaryStatus, result.FailureReason) == ("Completed", "Completed", None)
    assert result.exit_code == 0
    model_uri = f"s3://{CHANNEL_BUCKET}/output/{spec.name}/output/model.tar.gz"
    assert result.ModelArtifacts == {"S3ModelArtifacts": model_uri}
    assert tar_members(platform, model_uri) == {"model.txt": b"trained\n"}
    assert result.job_dir is None


def test_failure_reason_and_artifacts_of_a_failed_job(platform: TrainingPlatform, probe: str) -> None:
    """Exit 3 with a 5000-character failure file: only its first 1024 characters reach FailureReason."""
    spec = make_spec(probe, "fail", mode="fail")
    result = platform.run(spec, timeout=60)
    assert (result.TrainingJobStatus, result.exit_code) == ("Failed", 3)
    assert result.hosts[0].failure_text == "a" * 1024
    assert result.FailureReason is not None
    assert result.FailureReason.startswith("AlgorithmError: aaaa")
    assert "b" not in result.FailureReason.removeprefix("AlgorithmError: ")
    assert len(result.FailureReason) <= 1024
    base = f"s3://{CHANNEL_BUCKET}/output/{spec.name}/output"
    assert tar_members(platform, f"{base}/model.tar.gz") == {"sub/weights.bin": b"partial\n"}
    assert result.output_data_uri == f"{base}/output.tar.gz"
    assert tar_members(platform, f"{base}/output.tar.gz") == {"metrics.txt": b"loss=9\n"}


def test_short_failure_reason_format(platform: TrainingPlatform, probe: str) -> None:
    script = "echo 'bad hyperparameter lr' > /opt/ml/output/failure; exit 3"
    result = platform.run(make_spec(probe, "fail-short", entrypoint=["/bin/sh"], arguments=["-c", script]), timeout=60)
    assert result.TrainingJobStatus == "Failed"
    assert result.FailureReason == "AlgorithmError: bad hyperparameter lr, exit code: 3"


def test_missing_train_fails_with_the_exec_error(platform: TrainingPlatform, no_train: str) -> None:
    result = platform.run(make_spec(no_train, "no-train"), timeout=60)
    assert result.TrainingJobStatus == "Failed"
    assert result.FailureReason is not None
    assert 'exec: "train": executable file not found in $PATH' in result.FailureReason
    assert result.hosts[0].start_error is not None


# -- stopping (§5) -------------------------------------------------------------------------------


def test_stop_with_sigterm_handler(platform: TrainingPlatform, probe: str) -> None:
    spec = make_spec(probe, "stop-trap", mode="trap")
    job = platform.start(spec)
    assert job.wait_for_log(r"^step 1$", timeout=30) is not None
    job.stop(grace=60)
    result = job.wait(timeout=120)
    assert (result.TrainingJobStatus, result.SecondaryStatus) == ("Stopped", "Stopped")
    # The handler ended the container within the grace: no SIGKILL was due, none was sent.
    assert result.killed is False
    assert result.timeline.sigkill_sent is None
    assert "SIGTERM received" in result.logs_after_sigterm  # the handler's own line, after SIGTERM went out
    tl = result.timeline
    assert tl.sigterm_sent is not None
    assert tl.exited is not None
    assert tl.sigterm_sent <= tl.exited < tl.sigterm_sent + 60  # after SIGTERM, before SIGKILL was due
    assert result.timeline.process_tree, "process tree not captured at stop"
    assert any(PROBE in " ".join(p.values()) for p in result.timeline.process_tree)
    assert tar_members(platform, result.ModelArtifacts["S3ModelArtifacts"]) == {"stopped.txt": b"saved\n"}


def test_stop_without_handler_is_killed_after_the_grace(platform: TrainingPlatform, probe: str) -> None:
    """PID 1 without a SIGTERM handler ignores SIGTERM; only SIGKILL at the end of the grace ends it."""
    job = platform.start(make_spec(probe, "stop-ignore", mode="ignore"))
    assert job.wait_for_log(r"^step 1$", timeout=30) is not None
    job.stop(grace=2)
    result = job.wait(timeout=120)  # generous: the point is that SIGKILL comes at all, not how fast
    assert (result.TrainingJobStatus, result.killed, result.exit_code) == ("Stopped", True, 137)
    tl = result.timeline
    assert tl.sigterm_sent is not None
    assert tl.sigkill_sent is not None
    assert tl.exited is not None
    # Order, not durations: SIGKILL only once the grace was over, and the container ended after it.
    assert tl.sigkill_sent >= tl.sigterm_sent + 2 - 0.01  # 0.01: monotonic vs wall clock drift
    assert tl.sigkill_sent <= tl.exited
    assert "SIGTERM received" not in result.logs


def test_max_runtime_stops_the_job(platform: TrainingPlatform, probe: str) -> None:
    result = platform.run(make_spec(probe, "max-runtime", mode="trap", max_runtime=2), timeout=120)
    assert (result.TrainingJobStatus, result.SecondaryStatus) == ("Stopped", "MaxRuntimeExceeded")
    assert "SIGTERM received" in result.logs_after_sigterm
    assert result.killed is False
    tl = result.timeline
    assert tl.started is not None
    assert tl.sigterm_sent is not None
    assert tl.exited is not None
    # SIGTERM never before MaxRuntimeInSeconds has passed; the container ends after it (no upper bound: load).
    assert tl.sigterm_sent >= tl.started + 2
    assert tl.sigterm_sent <= tl.exited


def test_wait_for_log_returns_the_match(platform: TrainingPlatform, probe: str) -> None:
    with platform.start(make_spec(probe, "wait-log", mode="trap")) as job:
        match = job.wait_for_log(r"^step (\d+)$", timeout=30)
        assert match is not None
        assert match.group(1) == "1"
        assert job.wait_for_log("never printed", timeout=0.5) is None
        job.stop(grace=5)
        assert job.wait(timeout=60).TrainingJobStatus == "Stopped"
