"""In a CI log (no TTY) the progress lines sit between whole lines of pytest's own, never inside one."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest_helpers import REPO


@pytest.fixture(scope="module")
def sleeper(example_image: Callable[[str | Path], str]) -> str:
    return example_image(REPO / "benchmarks" / "images" / "sleeper")


@pytest.mark.parametrize("verbosity", [[], ["-v"]])
def test_progress_never_splits_pytest_lines(sleeper: str, tmp_path: Path, verbosity: list[str]) -> None:
    command = [
        *(sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-p", "no:randomly"),
        *(f"--sm-image={sleeper}", "--sm-hyperparameter=seconds=4", "--sm-parallel=8", "-k", "SM-IMG or SM-RUN"),
        *verbosity,
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    body = lines[: next(i for i, line in enumerate(lines) if "SageMaker training contract" in line)]
    progress = [line for line in body if line.startswith("sagemaker-contract:  ")]
    assert progress, done.stdout
    prefix = f"sagemaker-contract/{sleeper}"
    ours = re.compile(r"^sagemaker-contract:  \S+  \w+")
    for line in body:
        if ours.match(line):
            assert "PASSED" not in line, f"pytest's output inside ours: {line!r}"
            assert not re.search(r"\s\.+$", line), f"pytest's dots inside ours: {line!r}"
        elif verbosity and line.startswith(prefix):
            # A test's location waiting for its outcome ends where ours start (as pytest's own live logs end it);
            # the outcome then comes with the location again, never alone.
            assert re.fullmatch(r"\S+::SM-[A-Z-]+ (PASSED +\[ *\d+%\])?", line), f"split line: {line!r}"
        elif verbosity:
            assert not re.match(r"(PASSED|FAILED|SKIPPED)\b", line), f"an outcome without its test: {line!r}"
        else:
            assert not re.fullmatch(r"[.FsEx]+( +\[ *\d+%\])?", line), f"outcomes without their module: {line!r}"
            if line.startswith(prefix):
                assert re.fullmatch(re.escape(prefix) + r" [.]+ +\[ *\d+%\]", line), f"split line: {line!r}"
