"""Static checks on real images built on the engine: each broken example fails exactly its one clause."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract import image_facts as image_inspect
from pytest_sagemaker_contract.image_facts import STATIC_CHECKS, ImageMissingError, read_image
from pytest_sagemaker_contract.platform import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import build

pytestmark = pytest.mark.docker

ORDER = (
    "SM-IMG-EXEC-FORM",
    "SM-IMG-NO-TINI",
    "SM-IMG-TRAIN-ON-PATH",
    "SM-IMG-OPT-ML-EMPTY",
    "SM-IMG-NO-DRIVER",
)
P, F, S = "passed", "failed", "skipped"
EXPECTED = {
    "broken/shell-form": (F, P, S, P, P),
    "broken/tini": (P, F, S, P, P),
    "broken/opt-ml-files": (P, P, S, F, P),
    "broken/bundled-driver": (P, P, S, P, F),
    "broken/no-train": (P, P, F, P, P),
    "valid/train-on-path": (P, P, P, P, P),
    "valid/opt-ml-code": (P, P, S, P, P),
}
INSPECT_FILTER = {"label": "sm-contract=inspect"}


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    client.ping()
    yield client
    client.close()


#: On this module's inspection containers only: another session's inspection running meanwhile is not ours.
TAG = f"image-facts-{uuid.uuid4().hex[:8]}"


def tagged(client: docker.DockerClient) -> Engine:
    engine = Engine(client)
    engine.default_labels["sm-contract.tag"] = TAG
    return engine


def leftover_containers(client: docker.DockerClient) -> list[str]:
    mine = {"label": [INSPECT_FILTER["label"], f"sm-contract.tag={TAG}"]}
    return [c["Id"] for c in client.api.containers(all=True, filters=mine)]


@pytest.mark.parametrize("example", list(EXPECTED))
def test_example_verdicts(engine: docker.DockerClient, example: str) -> None:
    facts = read_image(tagged(engine), build.build(engine, example))
    outcomes = {check_id: check(facts) for check_id, check in STATIC_CHECKS.items()}
    seen = {check_id: outcome.outcome for check_id, outcome in outcomes.items()}
    assert seen == dict(zip(ORDER, EXPECTED[example], strict=True)), {k: o.message for k, o in outcomes.items()}
    for outcome in outcomes.values():
        assert "\n" not in outcome.message
    assert leftover_containers(engine) == []


def test_shell_form_is_read_as_docker_stores_it(engine: docker.DockerClient) -> None:
    facts = read_image(tagged(engine), build.build(engine, "broken/shell-form"))
    assert facts.entrypoint == ("/bin/sh", "-c", "/opt/program/train.sh")
    assert facts.image_id.startswith("sha256:")
    message = STATIC_CHECKS["SM-IMG-EXEC-FORM"](facts).message
    assert message.endswith('Use exec form: ENTRYPOINT ["/opt/program/train.sh"]')


def test_valid_opt_ml_code_warns_and_names_the_allowed_cuda_files(engine: docker.DockerClient) -> None:
    facts = read_image(tagged(engine), build.build(engine, "valid/opt-ml-code"))
    opt_ml = STATIC_CHECKS["SM-IMG-OPT-ML-EMPTY"](facts)
    assert len(opt_ml.warnings) == 1
    assert "/opt/ml/code/train.sh" in opt_ml.warnings[0]
    driver = STATIC_CHECKS["SM-IMG-NO-DRIVER"](facts)
    assert "/usr/local/cuda-12.2/compat/libcuda.so.1" in driver.message
    assert "/usr/local/cuda-12.2/lib64/stubs/libcuda.so" in driver.message
    assert facts.resolve("/usr/local/cuda/compat/libcuda.so.1") is not None


def test_image_without_cmd_or_entrypoint_is_read(engine: docker.DockerClient, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'RUN ["/bin/busybox", "ln", "/bin/busybox", "/bin/hard"]\n'
    )
    facts = read_image(tagged(engine), build.build(engine, tmp_path))
    assert (facts.entrypoint, facts.cmd, facts.workdir) == (None, None, "/")
    assert facts.files["/bin/busybox"].kind == "file"
    assert facts.files["/bin/busybox"].mode & 0o111
    assert facts.files["/bin/sh"] == image_inspect.FileEntry("/bin/sh", "symlink", 0o777, "/bin/busybox")
    hard = facts.files["/bin/hard"]
    assert (hard.kind, hard.linkname) in {("hardlink", "/bin/busybox"), ("file", None)}
    assert facts.has_shell()
    assert facts.find_on_path("sh") == "/bin/sh"
    assert STATIC_CHECKS["SM-IMG-TRAIN-ON-PATH"](facts).outcome == "failed"
    assert leftover_containers(engine) == []


def test_missing_image_is_a_one_line_error(engine: docker.DockerClient) -> None:
    with pytest.raises(ImageMissingError) as caught:
        read_image(tagged(engine), "sm-contract-test/does-not-exist:never")
    assert str(caught.value) == (
        "image 'sm-contract-test/does-not-exist:never' is not on the Docker engine: "
        "build or load it first (no registry is consulted)"
    )
    assert isinstance(caught.value, docker.errors.ImageNotFound)


def test_container_is_removed_when_reading_fails(engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = build.build(engine, "valid/train-on-path")

    def broken_reader(chunks: Iterator[bytes]) -> dict[str, image_inspect.FileEntry]:
        next(chunks)
        raise RuntimeError("reader failed")

    monkeypatch.setattr(image_inspect, "_read_entries", broken_reader)
    with pytest.raises(RuntimeError, match="reader failed"):
        read_image(tagged(engine), tag)
    assert leftover_containers(engine) == []
