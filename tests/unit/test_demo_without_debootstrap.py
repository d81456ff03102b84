"""The demo on a machine that cannot pull python:3.12-slim and has no debootstrap: one line saying what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import build  # examples/build.py (tests/conftest.py puts examples/ on sys.path)
import pytest

from ..helpers import REPO


class NoDockerNeeded:
    """The offline base is refused before the engine is used: any call to it is a test failure."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the engine was used ({name}) although no base can be built")


def test_no_debootstrap_is_one_line_naming_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no debootstrap
    with pytest.raises(RuntimeError) as raised:
        build._build_offline_base(NoDockerNeeded(), build.OFFLINE_BASE)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "\n" not in message
    assert "apt-get install -y debootstrap" in message
    assert "python:3.12-slim" in message
    assert "Errno" not in message


def test_the_demo_prints_that_line_instead_of_a_traceback(tmp_path: Path) -> None:
    """examples/demo.py with the same failure: exit 1, its one line, no traceback."""
    code = (
        "import sys, runpy; sys.path.insert(0, 'examples'); import build\n"
        "def refuse(client, key=None):\n"
        "    raise RuntimeError(build._offline_base_missing())\n"
        "build.build = lambda client, what: refuse(client)\n"
        "sys.argv = ['demo.py']; runpy.run_path('examples/demo.py', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={"PATH": str(tmp_path)}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("demo: building examples/kmeans failed: ")
    assert "apt-get install -y debootstrap" in line
