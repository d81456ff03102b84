"""FileSystemDataSource channels (EFS, FSx for Lustre) from a local directory (issue 18, item 10), on a real image:
mounted at /opt/ml/input/data/<channel>, read-only or read-write per FileSystemAccessMode, on the bind data path
and on the engine data path (forced on the local engine); without a local directory, one usage error line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.platform.result import TrainingJobResult
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES, data_path_platform, image_on_engine

VPC = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}


@pytest.fixture(scope="module", params=["bind", "engine", "remote"])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingPlatform]:
    with data_path_platform(request, tmp_path_factory.mktemp("fsx")) as plat:
        yield plat


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


@pytest.fixture(scope="module")
def image(platform: TrainingPlatform, probe: str, docker_client: docker.DockerClient) -> str:
    return image_on_engine(platform, probe, docker_client)


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    root = tmp_path / "efs"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("1,2\n")
    (root / "sub" / "b.csv").write_text("3,4\n")
    return root


def fs_channel(mode: str, name: str = "shared") -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "FileSystemDataSource": {
                "FileSystemId": "fs-0123456789abcdef0",
                "FileSystemType": "EFS",
                "DirectoryPath": "/datasets/shared",
                "FileSystemAccessMode": mode,
            }
        },
    }


def fs_request(image: str, mode: str, script: str) -> dict[str, Any]:
    request = with_overrides(None, name=job_name(f"fsx-{mode}"), image=image, entrypoint=["/bin/sh", "-c", script])
    request["InputDataConfig"] = [fs_channel(mode)]
    request["VpcConfig"] = VPC
    return request


def run(plat: TrainingPlatform, request: dict[str, Any], local: Path | None) -> TrainingJobResult:
    channels = {"shared": local} if local is not None else None
    return plat.run(parse_request(request), timeout=60, local_channels=channels)


def test_ro_mounts_the_directory_read_only(platform: TrainingPlatform, image: str, shared: Path) -> None:
    script = (
        "cat /opt/ml/input/data/shared/a.csv /opt/ml/input/data/shared/sub/b.csv; "
        "if touch /opt/ml/input/data/shared/new 2>/dev/null; then echo WRITABLE; else echo READ-ONLY; fi; "
        "cat /opt/ml/input/config/inputdataconfig.json; echo"
    )
    result = run(platform, fs_request(image, "ro", script), shared)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "1,2" in result.logs
    assert "3,4" in result.logs
    assert "READ-ONLY" in result.logs
    assert "WRITABLE" not in result.logs
    assert not (shared / "new").exists()
    config_line = next(line for line in result.logs.splitlines() if '"shared"' in line)
    config = json.loads(config_line[config_line.index("{") :])
    assert config["shared"]["TrainingInputMode"] == "File"
    assert result.hosts[0].channels[0].read_only is True
    assert sorted(result.hosts[0].channels[0].files) == ["a.csv", "sub/b.csv"]


def test_rw_mounts_the_directory_read_write(platform: TrainingPlatform, image: str, shared: Path) -> None:
    script = "cat /opt/ml/input/data/shared/a.csv && echo from-the-job >/opt/ml/input/data/shared/written && echo WROTE"
    result = run(platform, fs_request(image, "rw", script), shared)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "1,2" in result.logs
    assert "WROTE" in result.logs
    if platform.data_path == "bind":  # the directory itself is mounted: the write reaches it, as it reaches EFS
        assert (shared / "written").read_text() == "from-the-job\n"
        assert not any("FileSystemDataSource, rw" in w for w in result.warnings)
    else:  # no shared filesystem: the containers write into a copy, and the result says so
        assert not (shared / "written").exists()
        assert any("FileSystemDataSource, rw" in w and str(shared) in w for w in result.warnings), result.warnings


def test_without_a_local_directory_the_job_fails_naming_the_fix(platform: TrainingPlatform, image: str) -> None:
    result = run(platform, fs_request(image, "ro", "echo never"), None)
    assert result.TrainingJobStatus == "Failed"
    assert "EFS fs-0123456789abcdef0:/datasets/shared (ro)" in result.FailureReason
    assert "--sm-channel shared=DIR" in result.FailureReason
    assert "never" not in result.logs


def test_the_plugin_refuses_a_file_system_channel_without_a_directory(pytester: pytest.Pytester) -> None:
    request = fs_request("img:1", "ro", "true")
    job = pytester.path / "job.json"
    job.write_text(json.dumps(request))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--sm-job={job}", "--collect-only")
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert "channel 'shared' reads FileSystemDataSource EFS fs-0123456789abcdef0:/datasets/shared" in errors[0]
    assert "add --sm-channel shared=DIR" in errors[0]
    assert "Traceback" not in output


def test_the_layout_a_job_starts_with(platform: TrainingPlatform, image: str, shared: Path) -> None:
    """Issue 18, item 8 (docs/contract.md §3): the output subfolders exist before the start, the platform's
    directories are writable by a non-root USER (the stricter modes of real jobs are not confirmed by a public
    listing), and no `<channel>-manifest` file appears beside a channel (not confirmed either)."""
    script = (
        "stat -c '%n %a' /opt/ml/model /opt/ml/output /opt/ml/output/data /opt/ml/input/data /opt/ml/input/config; "
        "ls -A /opt/ml/input/data | sed 's/^/ENTRY /'"
    )
    request = with_overrides(None, name=job_name("layout"), image=image, entrypoint=["/bin/sh", "-c", script])
    request["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{CHANNEL_BUCKET}/x/train/"}},
        }
    ]
    result = platform.run(parse_request(request), timeout=60, local_channels={"train": shared})
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    modes = dict(ln.split() for ln in result.logs.splitlines() if ln.startswith("/opt/ml/"))
    assert modes == {
        "/opt/ml/model": "777",
        "/opt/ml/output": "777",
        "/opt/ml/output/data": "777",
        "/opt/ml/input/data": "777",
        "/opt/ml/input/config": "755",
    }
    assert [ln for ln in result.logs.splitlines() if ln.startswith("ENTRY ")] == ["ENTRY train"]


USER_TEST = """
def test_the_file_system_channel_is_mounted(training_job):
    result = training_job(environment={"PEERS": ""}).run()
    assert result.TrainingJobStatus == "Completed", result.FailureReason
    assert "DATA shared/a.csv" in result.logs
    assert "DATA shared/sub/b.csv" in result.logs
"""


def test_the_plugin_mounts_the_directory_given_with_sm_channel(
    pytester: pytest.Pytester, probe: str, shared: Path
) -> None:
    """`--sm-job` with a FileSystemDataSource channel and `--sm-channel shared=DIR`: the request passes the
    plugin's checks and the `training_job` fixture runs it with the directory mounted."""
    request = fs_request(probe, "ro", "true")
    del request["AlgorithmSpecification"]["ContainerEntrypoint"]
    job = pytester.path / "job.json"
    job.write_text(json.dumps(request))
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--sm-image={probe}",
        f"--sm-job={job}",
        f"--sm-channel=shared={shared}",
        "--sm-no-suite",
    )
    result.assert_outcomes(passed=1)


def test_two_channels_on_one_directory_fail_naming_both(platform: TrainingPlatform, image: str, shared: Path) -> None:
    request = fs_request(image, "ro", "echo never")
    request["InputDataConfig"].append(fs_channel("rw", name="other"))
    result = platform.run(parse_request(request), timeout=60, local_channels={"shared": shared, "other": shared})
    assert result.TrainingJobStatus == "Failed"
    assert "are both given" in result.FailureReason
    assert "'shared'" in result.FailureReason
    assert "'other'" in result.FailureReason
    assert "never" not in result.logs
