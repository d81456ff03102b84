"""The CI examples and the reusable action work as written: their own commands, read from the YAML, gate a real image.

Each example's gate command runs unchanged in a directory laid out like a user's image repository (job.json,
tests/data), with the kmeans example's image in place of `algo:ci`: GitHub's on the local engine, GitLab's
(Docker-in-Docker) on the non-local engine (.ci/remote-engine), as a dind service is. Their install lines
cannot run here (no network): they are checked to name the repository, not the unpublished package name.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import jsonschema
import pytest
import yaml

from .conftest_helpers import KMEANS, REPO

CI = REPO / "examples" / "ci"
SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())


def commands(example: str) -> list[str]:
    """Every shell command of the example, in order (GitHub steps' `run`, GitLab's `script`)."""
    data: dict[str, Any] = yaml.safe_load((CI / example).read_text())
    if example.startswith("github"):
        return [step["run"] for job in data["jobs"].values() for step in job["steps"] if "run" in step]
    return [line for job in data.values() if isinstance(job, dict) for line in job.get("script", [])]


def gate(example: str) -> list[str]:
    (line,) = [c for c in commands(example) if c.strip().startswith("pytest ")]
    return shlex.split(line)


@pytest.mark.parametrize("example", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_install_line_names_the_repository_not_the_unpublished_package(example: str) -> None:
    (install,) = [c for c in commands(example) if "pip install" in c]
    words = shlex.split(install)
    assert "pytest-sagemaker-contract @ git+https://github.com/OWNER/pytest-sagemaker-contract@main" in words
    assert "pytest-sagemaker-contract" not in words, "not on PyPI: `pip install pytest-sagemaker-contract` fails"
    assert "pytest-xdist" in words, "the gate runs with -n 2"


def test_the_dind_example_installs_a_static_busybox() -> None:
    (apt,) = [c for c in commands("gitlab-ci.yml") if "apt-get install" in c]
    assert "busybox-static" in shlex.split(apt)


def test_both_examples_gate_with_the_same_options() -> None:
    assert gate("github-actions.yml") == gate("gitlab-ci.yml")
    assert "--sm-strict" in gate("github-actions.yml")


@pytest.fixture(scope="module")
def kmeans(example_image: Callable[[str], str]) -> str:
    return example_image("kmeans")


def user_repository(tmp_path: Path) -> Path:
    """A training-image repository as the examples expect one: job.json and the channel in tests/data."""
    shutil.copy(KMEANS / "job.json", tmp_path / "job.json")
    shutil.copytree(KMEANS / "data", tmp_path / "tests" / "data")
    return tmp_path


def run_gate(example: str, image: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = gate(example)
    assert argv[0] == "pytest"
    argv = [sys.executable, "-m", "pytest", *(image if word == "algo:ci" else word for word in argv[1:])]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


def check_reports(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    """The gate passed, and its three reports are there and well-formed (`cwd`: where they were written)."""
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, output
    report = json.loads((cwd / "contract.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    checks = {c["id"]: c for c in report["images"][0]["checks"]}
    assert checks["SM-SIG-TERM"]["outcome"] == "passed", "the --sm-stop-on-log trigger fired: SIGTERM really tested"
    assert report["images"][0]["summary"]["not_tested"] == 0
    cases = list(ET.parse(cwd / "junit.xml").iter("testcase"))
    assert len(cases) == len(checks)
    assert '<svg class="timeline"' in (cwd / "contract.html").read_text()


def test_the_github_gate_command_passes_a_good_image(kmeans: str, tmp_path: Path, no_leftovers: str) -> None:
    cwd = user_repository(tmp_path)
    check_reports(run_gate("github-actions.yml", kmeans, cwd, dict(os.environ)), cwd)


def test_the_gitlab_gate_command_passes_on_a_non_local_engine(
    kmeans: str,
    remote_engine_host: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    remote_private_tmp: Path,
) -> None:
    remote_engine = remote_engine_host
    remote = docker.DockerClient(base_url=remote_engine, timeout=300)
    try:
        try:
            present = remote.images.get(kmeans).id == docker_client.images.get(kmeans).id
        except docker.errors.ImageNotFound:
            present = False
        if not present:  # what `docker build` did on the dind service
            remote.images.load(b"".join(docker_client.api.get_image(kmeans)))
    finally:
        remote.close()
    cwd = user_repository(tmp_path)
    done = run_gate("gitlab-ci.yml", kmeans, cwd, {**os.environ, "DOCKER_HOST": remote_engine})
    check_reports(done, cwd)
    assert f"engine {remote_engine}" in done.stdout, "the run used the non-local engine"


def action_gate() -> str:
    """The shell script of the reusable action's gate step (action.yml at the repository's root)."""
    action: dict[str, Any] = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    (step,) = [s for s in action["runs"]["steps"] if s.get("name") == "SageMaker training contract"]
    assert set(step["env"]) == {"SM_IMAGE", "SM_JOB", "SM_CHANNELS", "SM_STRICT", "SM_OPTIONS", "SM_REPORTS"}
    script: str = step["run"]
    return script


def test_the_action_installs_the_plugin_from_its_own_checkout() -> None:
    action: dict[str, Any] = yaml.safe_load((REPO / "action.yml").read_text())
    runs = [s.get("run", "") for s in action["runs"]["steps"]]
    assert any('pip install "$GITHUB_ACTION_PATH"' in run for run in runs)
    assert set(action["inputs"]) >= {"image", "job", "channels", "strict", "options"}


def test_the_action_gate_passes_a_good_image(kmeans: str, tmp_path: Path, no_leftovers: str) -> None:
    """The action's gate step as GitHub runs it (bash, inputs as environment), on the local engine."""
    cwd = user_repository(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SM_IMAGE": kmeans,
        "SM_JOB": "job.json",
        "SM_CHANNELS": "train=tests/data",
        "SM_STRICT": "true",
        "SM_OPTIONS": "--sm-sigterm-hyperparameter epochs=1000 --sm-stop-on-log '^epoch 2/' --sm-grace 30",
        "SM_REPORTS": "reports",
    }
    done = subprocess.run(
        ["bash", "-c", action_gate()], cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    check_reports(done, cwd / "reports")
