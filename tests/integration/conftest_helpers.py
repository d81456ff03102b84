"""Helpers shared by the integration tests (not fixtures: those are in conftest.py, e.g. `contract_check` for a
built-in check's real handle over a test's own platform)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sagemaker_contract.contract import CheckContext
from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, RequestOverrides, job_name, with_overrides
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from ..helpers import EXAMPLES, IMAGES, KMEANS, REMOTE_HOST, REMOTE_TOOL, REPO, run_suite

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ALL_CHECKS",
    "EXAMPLES",
    "IMAGES",
    "KMEANS",
    "REMOTE_HOST",
    "REMOTE_TOOL",
    "REPO",
    "assert_environment_fault",
    "auto_gives_gpus",
    "host_gpu_support",
    "job_spec",
    "local_platform",
    "outcomes_by_check",
    "run_checks",
    "run_suite",
]


#: The built-in suite's checks in the order the suite runs and reports them, written out (not read from
#: `contract.CHECKS`) so that a check lost or moved fails the tests that compare with it.
ALL_CHECKS = (
    "SM-IMG-EXEC-FORM",
    "SM-IMG-NO-TINI",
    "SM-IMG-TRAIN-ON-PATH",
    "SM-IMG-OPT-ML-EMPTY",
    "SM-IMG-NO-DRIVER",
    "SM-RUN-DEFAULT",
    "SM-RUN-ENTRYPOINT",
    "SM-RUN-ARGUMENTS",
    "SM-RUN-BOTH",
    "SM-RUN-EXTERNAL-SCRIPT",
    "SM-OUT-MODEL",
    "SM-METRICS",
    "SM-SIG-TERM",
    "SM-SIG-MAX-RUNTIME",
    "SM-CKPT-RESUME",
    "SM-SPOT-RESTART",
    "SM-DATA-MODES",
    "SM-HOSTS-MULTI",
    "SM-NET-ISOLATION",
    "SM-GPU-VISIBLE",
)


@contextlib.contextmanager
def local_platform(workdir: Path, grace_s: float, *, bridge: bool = False, **kw: Any) -> Iterator[TrainingPlatform]:
    """A platform on the local engine with its own S3 (the generated-URI bucket made), closed after use.

    `bridge`: the S3 server listens on Docker's bridge gateway and containers reach it there directly, as the
    plugin sets it up; `kw` goes to `TrainingPlatform` as it is.
    """
    engine = Engine()
    if bridge:
        gateway = engine.bridge_gateway()
        assert gateway, "these tests need Docker's default bridge on this machine"
        s3 = S3Server(host=gateway).start()
        kw.setdefault("container_s3_endpoint", s3.endpoint_url)
    else:
        s3 = S3Server().start()
    s3.ensure_bucket(CHANNEL_BUCKET)
    plat = TrainingPlatform(engine, s3, workdir, grace_s=grace_s, **kw)
    try:
        yield plat
    finally:
        plat.close()
        s3.stop()
        engine.client.close()


def job_spec(image: str, prefix: str, **overrides: Unpack[RequestOverrides]) -> TrainingJobSpec:
    """The parsed default request for `image`, named `<prefix>-…`, with `with_overrides`' keywords applied."""
    return parse_request(with_overrides(None, name=job_name(prefix), image=image, **overrides))


def assert_environment_fault(check: CheckContext, excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The check failed as an environment fault about a container, not the image's; its kept log (outside the
    platform's work directory, so that the report's link outlives it) is removed. Returns the message."""
    message = str(excinfo.value)
    assert message.startswith(
        f"{check.check_id} ({check.note.clause}): environment fault, not the image's: container sm-"
    ), message
    assert "The run proves nothing about the image" in message
    assert check.note.message.startswith("environment fault, not the image's"), check.note.message
    log = Path(check.note.log_path)
    assert log.is_file(), "the log named in the report must outlive the platform's work directory"
    assert check.platform.workdir not in log.parents
    log.unlink()
    return message


def outcomes_by_check(report: dict[str, Any], image_index: int = 0) -> dict[str, tuple[str, str]]:
    """check id -> (outcome, message) from a --sm-report JSON document."""
    return {c["id"]: (c["outcome"], c["message"]) for c in report["images"][image_index]["checks"]}


def run_checks(
    pytester: pytest.Pytester, image: str, *args: str
) -> tuple[pytest.RunResult, dict[str, tuple[str, str]]]:
    """`pytest --sm-image IMAGE ARGS` in a subprocess; its result and the JSON report's verdicts."""
    report = pytester.path / "report.json"
    result = run_suite(pytester, f"--sm-image={image}", f"--sm-report={report}", *args)
    return result, outcomes_by_check(json.loads(report.read_text()))


def host_gpu_support(client: Any) -> dict[str, list[str]]:
    """What on this host could give containers NVIDIA GPUs, read here rather than by the code under test.

    `runtime`: a registered `nvidia` runtime (`docker info`); `cdi`: CDI spec files naming nvidia.com/gpu;
    `devices`: /dev/nvidia<N> nodes. All three are empty on a machine without GPUs.
    """
    runtime = ["nvidia"] if "nvidia" in (client.info().get("Runtimes") or {}) else []
    cdi = []
    for directory in ("/etc/cdi", "/var/run/cdi"):
        for path in sorted(Path(directory).glob("*")):
            try:
                if "nvidia.com/gpu" in path.read_text(errors="replace"):
                    cdi.append(str(path))
            except OSError:
                continue
    devices = sorted(f"/dev/{n}" for n in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", n))
    return {"runtime": runtime, "cdi": cdi, "devices": devices}


def auto_gives_gpus(support: dict[str, list[str]]) -> bool:
    """Whether --sm-gpus auto (the default) gives containers GPUs here: only through the toolkit (runtime or CDI)."""
    return bool(support["runtime"] or support["cdi"])


def job_leftovers(platform: TrainingPlatform) -> list[str]:
    """The names of the platform's containers that no job should have left now: all of its run's but the
    idle slots' pods, which it keeps for the next single-host job (platform/slots.py)."""
    pods = {slot.pod for slot in platform.slots.idle}
    found = platform.engine.api.containers(all=True, filters={"label": f"sm-contract.run={platform.run_id}"})
    return [str(c["Names"][0]).lstrip("/") for c in found if c["Id"] not in pods]


def image_on_engine(platform: TrainingPlatform, tag: str, client: Any) -> str:
    """`tag` of the local engine on the platform's engine as well (copied there as `docker save | docker load`
    does when that engine lacks it or has another image under the tag); returns the tag."""
    engine = platform.engine.api
    wanted = client.api.inspect_image(tag)["Id"]
    try:
        present = engine.inspect_image(tag)["Id"]
    except Exception:  # docker.errors.ImageNotFound: not there yet
        present = None
    if present != wanted:
        engine.load_image(b"".join(client.api.get_image(tag)))
    return tag


@contextlib.contextmanager
def data_path_platform(request: pytest.FixtureRequest, workdir: Path) -> Iterator[TrainingPlatform]:
    """A platform for `request.param`: "bind" or "engine" (the data paths on the local engine) or "remote" (the
    non-local engine, no shared filesystem, so the engine path is its only one); closed after use."""
    import docker

    remote = request.param == "remote"
    client = request.getfixturevalue("remote_engine") if remote else docker.from_env(timeout=300)
    s3 = S3Server().start()
    data_path = "bind" if request.param == "bind" else "engine"
    plat = TrainingPlatform(Engine(client), s3, workdir, grace_s=5, data_path=data_path)
    try:
        yield plat
    finally:
        plat.close()
        s3.stop()
