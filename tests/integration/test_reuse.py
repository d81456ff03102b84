"""--sm-reuse end to end: real images, the real engine, pytest's real cache.

Each pytest run gets its own SM_CONTRACT_RUN_ID, which every container of its jobs carries as a label: the
engine's own `docker events` then say whether a run trained anything. A reused rerun starts none of them (its
session still creates, never starts, the probe that measures the data path, and starts its unlabelled keeper).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.helpers import IMAGES

#: A static check, a job, a SIGTERM run (sections and a timeline to replay), a structural skip, a channel check.
CHECKS = "SM-IMG-EXEC-FORM or SM-RUN-DEFAULT or SM-SIG-TERM or SM-GPU-VISIBLE or SM-DATA-MODES"
SUITE = ("--sm-env=EPOCHS=3", "--sm-stop-after=1", "--sm-grace=3", "-k", CHECKS)


@dataclass
class Run:
    code: int
    output: str
    report: dict[str, Any]
    #: Containers of this run that started (the engine's events, by the run's label).
    started: list[str]
    seconds: float

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.report["images"][0]["checks"]}

    @property
    def reused(self) -> set[str]:
        return {check_id for check_id, check in self.checks.items() if "reused" in check}


class Starts:
    """The engine's container start events of one run's label, watched live while it runs (the engine keeps only
    its last few hundred events for a later `since` query, and other sessions share it)."""

    def __init__(self, client: docker.DockerClient, tag: str) -> None:
        filters = {"type": "container", "event": "start", "label": f"sm-contract.tag={tag}"}
        self.stream = client.events(filters=filters, decode=True)  # subscribed once this returns
        self.names: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends by stop() closing it
            for event in self.stream:
                self.names.append(str(event.get("Actor", {}).get("Attributes", {}).get("name", "")))

    def stop(self) -> list[str]:
        self.stream.close()
        self.thread.join(timeout=30)
        return list(self.names)


class Runner:
    """`pytest --sm-reuse ...` in a subprocess, in one directory (so one .pytest_cache), as a CI job runs it."""

    def __init__(self, pytester: pytest.Pytester, client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch):
        self.pytester = pytester
        self.client = client
        self.monkeypatch = monkeypatch
        self.tags: list[str] = []

    def __call__(self, *args: str) -> Run:
        tag = f"t{uuid.uuid4().hex[:8]}"
        self.tags.append(tag)
        self.monkeypatch.setenv("SM_CONTRACT_RUN_ID", tag)
        report = self.pytester.path / f"report-{tag}.json"
        watch = Starts(self.client, tag)
        started = time.monotonic()
        try:
            result = self.pytester.runpytest_subprocess(
                "-p",
                "no:randomly",
                "--sm-reuse",
                f"--sm-report={report}",
                "--junitxml=junit.xml",
                "--sm-html=report.html",
                *args,
                timeout=600,
            )
        finally:
            names = watch.stop()
        seconds = time.monotonic() - started
        output = str(result.stdout) + str(result.stderr)
        data = json.loads(report.read_text()) if report.exists() else {"images": []}
        return Run(result.ret, output, data, names, seconds)

    def no_leftovers(self) -> None:
        for tag in self.tags:
            labelled = {"label": f"sm-contract.tag={tag}"}
            assert self.client.api.containers(all=True, filters=labelled) == [], f"containers of {tag} left behind"


@pytest.fixture
def runner(
    pytester: pytest.Pytester, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runner]:
    run = Runner(pytester, docker_client, monkeypatch)
    yield run
    run.no_leftovers()


class OwnImages:
    """Private copies of test images: their own tag and their own id (a line in the training script makes them
    differ from the shared image, which the builder would otherwise give the same id), so rebuilding or removing
    one touches no other test's image."""

    def __init__(self, tmp_path: Path, example_image: Callable[[str | Path], str], client: docker.DockerClient):
        self.tmp_path = tmp_path
        self.example_image = example_image
        self.client = client
        self.tags: set[str] = set()
        self.ids: list[str] = []

    def copy(self, name: str) -> tuple[str, Path]:
        unique = uuid.uuid4().hex[:8]
        context = self.tmp_path / f"reuse-{name}-{unique}"
        shutil.copytree(IMAGES / name, context)
        with (context / "train.sh").open("a") as script:
            script.write(f"# a private copy for test_reuse ({unique})\n")
        return self.build(context), context

    def build(self, context: Path) -> str:
        tag = self.example_image(context)
        self.tags.add(tag)
        self.ids.append(self.client.images.get(tag).id)
        return tag

    def remove(self) -> None:
        """Remove our images, each only while no tag but ours names it (never another test's image)."""
        for image_id in dict.fromkeys(reversed(self.ids)):
            with contextlib.suppress(docker.errors.ImageNotFound):
                tags = set(self.client.images.get(image_id).tags)
                if tags <= self.tags:
                    self.client.images.remove(image_id, force=True)


@pytest.fixture
def own_images(
    tmp_path: Path, example_image: Callable[[str | Path], str], docker_client: docker.DockerClient
) -> Iterator[OwnImages]:
    images = OwnImages(tmp_path, example_image, docker_client)
    yield images
    images.remove()


def _flip_one_byte(path: Path, offset: int) -> None:
    """Change one byte in place, keeping size and mtime: what size+mtime fingerprints cannot see."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_rerun_reuses_every_verdict_and_any_change_runs_the_checks_again(
    runner: Runner, own_images: OwnImages, tmp_path: Path
) -> None:
    image, context = own_images.copy("epochs")
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "data.csv").write_text("x,y\n" + "1,2\n" * 4096)
    args = (f"--sm-image={image}", f"--sm-channel=train={channel}", *SUITE)

    first = runner(*args, "--sm-hyperparameter=lr=0.1")
    assert first.code == 0, first.output
    assert set(first.checks) == {"SM-IMG-EXEC-FORM", "SM-RUN-DEFAULT", "SM-SIG-TERM", "SM-GPU-VISIBLE", "SM-DATA-MODES"}
    assert first.reused == set()
    assert first.started, "the first run trains"
    assert first.checks["SM-GPU-VISIBLE"]["skip"] == "structural"

    again = runner(*args, "--sm-hyperparameter=lr=0.1")
    assert again.code == 0, again.output
    assert again.reused == set(first.checks), again.output
    assert again.started == [], "a reused run starts no container"
    for check_id, check in first.checks.items():
        replayed = again.checks[check_id]
        assert (replayed["outcome"], replayed["message"]) == (check["outcome"], check["message"])
        assert replayed["reused"]["duration_s"] == pytest.approx(check["duration_s"], abs=0.01)
    sigterm = again.checks["SM-SIG-TERM"]
    assert sigterm["jobs"] == first.checks["SM-SIG-TERM"]["jobs"], "the kept timeline, as it was"
    assert again.report["images"][0]["summary"]["reused"] == 5
    assert "(5 reused)" in again.output
    assert "sagemaker-contract: 5 reused:" in again.output
    assert "PASS   reused  " in again.output
    cases = list(ET.parse(runner.pytester.path / "junit.xml").iter("testcase"))
    assert len(cases) == 5
    assert all("reused (--sm-reuse)" in (case.findtext("system-out") or "") for case in cases)
    assert all("sm_reused" in {p.get("name") for p in case.iter("property")} for case in cases)
    assert (runner.pytester.path / "report.html").read_text().count(">reused</span>") == 5

    hyper = runner(*args, "--sm-hyperparameter=lr=0.2")
    assert hyper.code == 0, hyper.output
    assert hyper.reused == set(), "one hyperparameter changed: every check runs again"
    assert hyper.started
    assert "changed since its last run: option hyperparameters" in hyper.output

    script = context / "train.sh"
    _flip_one_byte(script, script.read_bytes().index(b"Trains"))
    rebuilt_image = own_images.build(context)
    assert rebuilt_image == image, "same tag, new id"
    rebuilt = runner(*args, "--sm-hyperparameter=lr=0.2")
    assert rebuilt.report["images"][0]["image_id"] != hyper.report["images"][0]["image_id"]
    assert rebuilt.reused == set(), "one byte of the image changed"
    assert rebuilt.started
    assert "changed since its last run: image" in rebuilt.output

    _flip_one_byte(channel / "data.csv", 100)
    rechanneled = runner(*args, "--sm-hyperparameter=lr=0.2")
    assert rechanneled.reused == set(), "one byte of a channel file changed (same size, same mtime)"
    assert rechanneled.started
    assert "channel train" in rechanneled.output

    kept = runner(*args, "--sm-hyperparameter=lr=0.2", "-n", "2")
    assert kept.reused == set(first.checks), "xdist workers reuse under the key their controller computed"
    assert kept.started == []

    cleared = runner(*args, "--sm-hyperparameter=lr=0.2", "--cache-clear")
    assert cleared.reused == set(), "--cache-clear forgets every kept verdict"
    assert cleared.started


def test_a_failure_the_check_decided_is_reused_and_fails_again(runner: Runner, own_images: OwnImages) -> None:
    image, _ = own_images.copy("fails-with-log")
    args = (f"--sm-image={image}", "-k", "SM-RUN-DEFAULT or SM-OUT-MODEL")
    first = runner(*args)
    assert first.code == 1, first.output
    assert {c["outcome"] for c in first.checks.values()} == {"failed"}
    again = runner(*args)
    assert again.code == 1, "a reused failure still fails the gate"
    assert again.reused == {"SM-RUN-DEFAULT", "SM-OUT-MODEL"}
    assert again.started == []
    assert again.checks["SM-RUN-DEFAULT"]["message"] == first.checks["SM-RUN-DEFAULT"]["message"]
    assert "loss diverged" in again.output, "the failure's log tail comes back with it"


def test_a_clause_that_went_untested_is_never_reused(runner: Runner, own_images: OwnImages) -> None:
    """Training ends before the SIGTERM trigger: that skip says nothing about the image, so it is tried again."""
    image, _ = own_images.copy("epochs")
    args = (f"--sm-image={image}", "--sm-env=EPOCHS=1", "--sm-stop-after=30", "-k", "SM-SIG-TERM or SM-IMG-EXEC-FORM")
    first = runner(*args)
    assert first.checks["SM-SIG-TERM"]["skip"] == "untested", first.output
    again = runner(*args)
    assert again.reused == {"SM-IMG-EXEC-FORM"}
    assert again.checks["SM-SIG-TERM"]["skip"] == "untested"
    assert again.started, "the untested clause ran again"


def test_an_image_the_engine_does_not_have_is_neither_reused_nor_kept(runner: Runner) -> None:
    missing = f"sm-contract-test/reuse-missing-{uuid.uuid4().hex[:8]}:latest"
    run = runner(f"--sm-image={missing}", "-k", "SM-IMG-EXEC-FORM")
    assert run.code == 1, run.output
    assert f"--sm-reuse: {missing}: nothing reused or kept (the engine has no such image)" in run.output
    assert not list((runner.pytester.path / ".pytest_cache").rglob("verdicts/*"))
