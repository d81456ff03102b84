"""An image's checks run concurrently (--sm-parallel), each reports its own verdict, and progress shows.

Concurrency is proven from the engine's own record (`docker events`: a container started before
another died), not from wall-clock windows.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from .conftest_helpers import REPO

SLEEPER = REPO / "benchmarks" / "images" / "sleeper"
RUN_CHECKS = ["SM-RUN-DEFAULT", "SM-RUN-ENTRYPOINT", "SM-RUN-ARGUMENTS", "SM-RUN-BOTH", "SM-RUN-EXTERNAL-SCRIPT"]


@pytest.fixture(scope="module")
def sleeper(example_image: Callable[[str | Path], str]) -> str:
    return example_image(SLEEPER)


def run_suite(tmp_path: Path, image: str, *args: str, tty: bool = False) -> tuple[int, str, list[dict[str, object]]]:
    """The run checks in a pytest subprocess tagged for `docker events`; its exit code, output and events."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        *("-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-p", "no:randomly"),
        *(f"--sm-image={image}", "--sm-hyperparameter=seconds=4", f"--sm-report={report}", "-k", "SM-RUN"),
        *args,
    ]
    client = docker.from_env()
    # Streamed while the suite runs: the engine keeps only its last 256 events, so a query afterwards
    # could miss the starts of a busy run.
    stream = client.api.events(
        filters={"type": "container", "label": f"sm-contract.tag={tag}", "event": ["start", "die"]}, decode=True
    )
    events: list[dict[str, object]] = []
    reader = threading.Thread(target=lambda: events.extend(stream), daemon=True)
    reader.start()
    env = {**os.environ, "SM_CONTRACT_RUN_ID": tag}
    if tty:
        command = ["script", "-qfec", shlex.join(command), "/dev/null"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every container that started has died (pytest removed them all)
        statuses = [e.get("status") for e in list(events)]
        if statuses.count("die") >= statuses.count("start") > 0:
            break
        time.sleep(0.05)
    stream.close()
    reader.join(timeout=10)
    return done.returncode, done.stdout + done.stderr, events


def _name(event: dict[str, object]) -> str:
    actor = event.get("Actor")
    attributes = actor.get("Attributes") if isinstance(actor, dict) else None
    return str(attributes.get("name", "")) if isinstance(attributes, dict) else ""


def overlapping(events: list[dict[str, object]]) -> int:
    """The most job containers running at once, from start/die events in order (each host's credentials pod,
    which lives and dies with its job container, left out)."""
    running = peak = 0
    jobs = [e for e in events if not _name(e).endswith("-pod")]
    for event in sorted(jobs, key=lambda e: int(str(e["timeNano"]))):
        running += 1 if event["status"] == "start" else -1
        peak = max(peak, running)
    return peak


def test_checks_run_concurrently_with_their_own_verdicts(tmp_path: Path, sleeper: str) -> None:
    code, out, events = run_suite(tmp_path, sleeper, "--sm-parallel=8")
    assert code == 0, out
    checks = {c["id"]: c for c in json.loads((tmp_path / "report.json").read_text())["images"][0]["checks"]}
    assert [c for c in checks if c in RUN_CHECKS] == RUN_CHECKS, "report order is the suite's"
    assert all(checks[c]["outcome"] == "passed" for c in RUN_CHECKS)
    assert overlapping(events) >= 3, "the run checks' containers should have run side by side"
    assert all(checks[c]["duration_s"] > 3.5 for c in RUN_CHECKS), "each check reports its own (>= 4 s) run"


def test_sm_parallel_1_runs_one_job_at_a_time(tmp_path: Path, sleeper: str) -> None:
    code, out, events = run_suite(tmp_path, sleeper, "--sm-parallel=1")
    assert code == 0, out
    assert len(events) >= 2 * len(RUN_CHECKS)
    assert overlapping(events) == 1


def test_progress_lines_in_a_ci_log_and_none_with_q(tmp_path: Path, sleeper: str) -> None:
    code, out, _ = run_suite(tmp_path, sleeper, "--sm-parallel=8")
    assert code == 0, out
    progress = [line for line in out.splitlines() if line.startswith("sagemaker-contract:  ")]
    assert any("  training  " in line and "| epoch " in line for line in progress), out
    assert "\x1b[" not in out
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    code, out, _ = run_suite(quiet, sleeper, "--sm-parallel=8", "-q")
    assert code == 0, out
    assert not [line for line in out.splitlines() if line.startswith("sagemaker-contract:  ")]


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo-terminal")
def test_progress_redraws_in_place_on_a_terminal(tmp_path: Path, sleeper: str) -> None:
    code, out, _ = run_suite(tmp_path, sleeper, "--sm-parallel=8", tty=True)
    assert code == 0, out
    assert "\x1b[J" in out, "the status block is erased before pytest writes"
    assert "  training  " in out
    assert not [line for line in out.splitlines() if line.startswith("sagemaker-contract:  ")]
