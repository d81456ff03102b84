"""A hostile image (issue 22, items 1, 2, 7): nothing of the host is written or read through the platform.

The image (tests/images/hostile-links) plants links to a file of the host where the platform reads,
packs or uploads what it wrote; hostile checkpoint keys are put into the session's S3 with boto3, as the
image could (it holds the session's keys). Every test runs on both data paths: bind mounts and the
engine path (volumes and archives), forced on the local engine.
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_sagemaker_contract.contract.model import model_problem
from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.spec import TrainingJobSpec

from .conftest_helpers import IMAGES, job_spec, local_platform, run_checks

SECRET = b"HOST-SECRET-7f3a"


@pytest.fixture(scope="module", params=["bind", "engine"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[TrainingPlatform]:
    with local_platform(tmp_path_factory.mktemp("hostile"), grace_s=5, data_path=request.param) as plat:
        yield plat
    labelled = {"label": f"{LABEL_RUN}={plat.run_id}"}
    assert docker_client.api.containers(all=True, filters=labelled) == [], "containers left behind"


@pytest.fixture(scope="module")
def hostile(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "hostile-links")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file of the host that the container cannot see."""
    path = tmp_path / "secret" / "token"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    os.chmod(path, 0o600)
    return path


def spec_for(image: str, mode: str, secret: Path, **overrides: Any) -> TrainingJobSpec:
    env = {"MODE": mode, "SECRET": str(secret), "SECRET_DIR": str(secret.parent)}
    return job_spec(image, f"hostile-{mode}", environment=env, **overrides)


def members(plat: TrainingPlatform, uri: str) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(plat.s3.get_bytes(uri)), mode="r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            handle = tar.extractfile(m) if m.isfile() else None
            out[m.name] = (m, handle.read() if handle is not None else None)
        return out


def all_bytes(plat: TrainingPlatform, bucket: str) -> bytes:
    client = plat.s3.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return b"".join(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed)


def test_failure_file_link_is_not_followed(platform: TrainingPlatform, hostile: str, secret: Path) -> None:
    result = platform.run(spec_for(hostile, "failure-link", secret), timeout=60)
    assert result.TrainingJobStatus == "Failed", result.log_tail()
    reason = result.FailureReason or ""
    assert SECRET.decode() not in reason
    assert "/opt/ml/output/failure was a symbolic link" in reason
    assert "not followed" in reason
    assert "exit code: 2" in reason


def test_checkpoint_links_never_upload_host_bytes(platform: TrainingPlatform, hostile: str, secret: Path) -> None:
    uri = f"s3://{CHANNEL_BUCKET}/{job_name('ckpt-link')}"
    result = platform.run(spec_for(hostile, "ckpt-link", secret, checkpoint_s3_uri=uri), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    prefix = uri.split("/", 3)[3]
    listed = platform.s3.client().list_objects_v2(Bucket=CHANNEL_BUCKET, Prefix=prefix + "/").get("Contents", [])
    keys = sorted(o["Key"][len(prefix) + 1 :] for o in listed)
    # Links that end at a file inside the directory carry that file, as the container sees it; the others stay out.
    assert keys == ["latest", "latest-abs", "real.ckpt"]
    for key in keys:
        assert platform.s3.get_bytes(f"{uri}/{key}") == b"real\n"
    assert SECRET not in all_bytes(platform, CHANNEL_BUCKET)
    text = "\n".join(result.warnings)
    assert "checkpoint stolen is a symbolic link" in text
    assert "checkpoint stolen-rel is a symbolic link" in text
    assert "checkpoint sub/root is a symbolic link" in text


def test_checkpoint_keys_that_leave_local_path_are_not_restored(
    platform: TrainingPlatform, hostile: str, secret: Path, tmp_path: Path
) -> None:
    """An image with the session's keys writes `<prefix>/../../<host path>`: the next job's restore skips it."""
    uri = f"s3://{CHANNEL_BUCKET}/{job_name('ckpt-keys')}"
    prefix = uri.split("/", 3)[3]
    target = tmp_path / "pwned"
    hostile_keys = [
        prefix + "/" + "../" * 30 + str(target).lstrip("/"),
        prefix + "/sub/../../../" + "../" * 30 + str(target).lstrip("/") + "2",
        prefix + "/" + str(target) + "3",  # `<prefix>//tmp/...`: an absolute name below the prefix
        prefix + "/a//b",
    ]
    client = platform.s3.client()
    for key in hostile_keys:
        client.put_object(Bucket=CHANNEL_BUCKET, Key=key, Body=b"owned")
    client.put_object(Bucket=CHANNEL_BUCKET, Key=prefix + "/good/ep1.ckpt", Body=b"ep1")
    result = platform.run(spec_for(hostile, "ckpt-resume", secret, checkpoint_s3_uri=uri), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert not target.exists()
    assert not Path(f"{target}2").exists()
    assert not Path(f"{target}3").exists()
    assert list(platform.workdir.iterdir()) == [], "something was written beside the job directories"
    assert result.checkpoints_restored == ["good/ep1.ckpt"]
    assert "/opt/ml/checkpoints/good/ep1.ckpt: ep1" in result.logs
    assert "owned" not in result.logs
    refused = [w for w in result.warnings if "was not restored" in w]
    assert len(refused) == len(hostile_keys), result.warnings
    assert any("'..' segment" in w for w in refused)
    assert any("is absolute" in w for w in refused)
    assert any("empty segment" in w for w in refused)


def test_model_and_output_keep_links_as_links(
    platform: TrainingPlatform, hostile: str, secret: Path, tmp_path: Path
) -> None:
    result = platform.run(spec_for(hostile, "model-links", secret), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.model_files == ["w.bin"]
    model = members(platform, result.ModelArtifacts["S3ModelArtifacts"])
    assert model["w.bin"][1] == b"weights\n"
    for name in ("abs", "rel-out", "rootdir", "latest"):
        info, data = model[name]
        assert info.issym(), name
        assert data is None
    assert model["abs"][0].linkname == str(secret)
    assert not any(name.startswith("rootdir/") for name in model)
    assert result.output_data_uri is not None
    output = members(platform, result.output_data_uri)
    assert output["leak"][0].issym()
    assert SECRET not in all_bytes(platform, result.ModelArtifacts["S3ModelArtifacts"].split("/")[2])

    dest = tmp_path / "extracted"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result.extract_model(dest)
    assert (dest / "w.bin").read_bytes() == b"weights\n"
    assert (dest / "latest").is_symlink()
    for name in ("abs", "rel-out", "rootdir"):
        assert not os.path.lexists(dest / name), name
    [warning] = [w for w in caught if "extract_model" in str(w.message)]
    assert "3 member(s)" in str(warning.message)


def test_output_data_that_is_a_link_packs_nothing_of_the_host(
    platform: TrainingPlatform, hostile: str, secret: Path
) -> None:
    result = platform.run(spec_for(hostile, "output-data-link", secret), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.output_files == []
    assert result.output_data_uri is None
    assert result.model_files == ["w.bin"]


def test_a_model_of_only_a_dangling_link_is_no_model(platform: TrainingPlatform, hostile: str, secret: Path) -> None:
    result = platform.run(spec_for(hostile, "model-dangling", secret), timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.model_files == []
    assert result.model_links == ["model.pt -> /nonexistent/model.pt"]
    model = members(platform, result.ModelArtifacts["S3ModelArtifacts"])
    assert model["model.pt"][0].issym()
    problem = model_problem(result.model_files, [], result.model_links)
    assert problem is not None
    assert "held only symbolic links (model.pt -> /nonexistent/model.pt)" in problem


def test_suite_verdicts_agree_on_a_model_of_links(
    pytester: pytest.Pytester, hostile: str, secret: Path, no_leftovers: str
) -> None:
    """SM-RUN-DEFAULT and SM-OUT-MODEL both fail, with the same reason (once one passed, the other said empty)."""
    _result, checks = run_checks(
        pytester,
        hostile,
        "-k",
        "SM-RUN-DEFAULT or SM-OUT-MODEL",
        "--sm-env=MODE=model-dangling",
        f"--sm-env=SECRET={secret}",
    )
    for check in ("SM-RUN-DEFAULT", "SM-OUT-MODEL"):
        outcome, message = checks[check]
        assert outcome == "failed", (check, message)
        assert "held only symbolic links (model.pt -> /nonexistent/model.pt)" in message, message
