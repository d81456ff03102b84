"""Inputs that used to hang or crash a run now end it in seconds with one line (issue 22, item 5).

No Docker engine is needed: the engine here is a black hole (a local socket that accepts connections and
never answers), and the other cases fail before any engine is asked.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_sagemaker_contract.platform.engine import Engine, EngineError
from pytest_sagemaker_contract.platform.instances import GIB, host_limit, local_capacity
from pytest_sagemaker_contract.platform.s3 import S3Server


class BlackHole:
    """A TCP endpoint that accepts every connection and never answers (a wedged engine, a wrong port)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.accepted: list[socket.socket] = []
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)
            self.first.set()

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlackHole]:
    hole = BlackHole()
    monkeypatch.setenv("DOCKER_HOST", hole.url)
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    yield hole
    hole.close()


def test_engine_connection_to_a_black_hole_fails_at_the_connect_timeout(
    black_hole: BlackHole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Engine, "connect_timeout_s", 1.0)
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        Engine()
    elapsed = time.monotonic() - started
    assert black_hole.first.is_set(), "the endpoint was never connected to"
    assert elapsed < 10, f"took {elapsed:.1f} s for a 1 s connect timeout"
    message = str(info.value)
    assert message.startswith("environment fault: the Docker engine at DOCKER_HOST=" + black_hole.url)
    assert "did not answer within 1 s" in message
    assert "\n" not in message


def test_a_refused_engine_names_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    with pytest.raises(EngineError, match=rf"cannot reach the Docker engine at DOCKER_HOST=tcp://127.0.0.1:{port} \("):
        Engine()


def test_the_suite_against_a_black_hole_engine_ends_fast_with_one_line(
    pytester: pytest.Pytester, black_hole: BlackHole
) -> None:
    """Before: two 300-s waits per connection attempt (about 10 minutes). Now one 15-s wait per session."""
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "--sm-image=x", timeout=300)
    elapsed = time.monotonic() - started
    output = result.stdout.str() + result.stderr.str()
    assert black_hole.first.is_set()
    assert elapsed < 4 * Engine.connect_timeout_s, f"took {elapsed:.0f} s"
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    expected = (
        f"sagemaker-contract: environment fault: the Docker engine at DOCKER_HOST={black_hole.url} accepted "
        f"the connection but did not answer within {Engine.connect_timeout_s:g} s"
    )
    assert expected in output
    assert "Traceback" not in output
    assert "During handling" not in output
    assert "INTERNALERROR" not in output


@pytest.mark.parametrize(
    ("cpus", "memory_gib", "limit"),
    [(2, 8, 4), (2, 23, 4), (16, 64, 32), (16, 8, 8), (1, 1, 2), (64, 512, 128), (None, None, 16), (4, None, 8)],
)
def test_host_limit_is_two_per_cpu_and_one_per_gib(cpus: int | None, memory_gib: int | None, limit: int) -> None:
    assert host_limit(cpus, memory_gib * GIB if memory_gib else None) == limit


def test_this_machine_is_measured() -> None:
    cpus, memory = local_capacity()
    assert cpus is not None
    assert cpus >= 1
    assert memory is not None
    assert memory > 0


def test_the_default_bound_names_this_machine(pytester: pytest.Pytester) -> None:
    cpus, memory = local_capacity()
    assert memory is not None
    limit = host_limit(cpus, memory)
    if limit + 1 > 20:
        pytest.skip(f"this machine runs {limit} hosts, more than --sm-instance-count's 20")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--sm-instance-count={limit + 1}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = next(line for line in result.errlines if line.startswith("ERROR:"))
    assert f"this machine ({cpus} CPUs, {memory / GIB:.0f} GiB) runs at most {limit}" in line


def test_an_explicit_bound_lets_a_bigger_job_through(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--sm-instance-count=20", "--sm-max-hosts=20", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_report_that_cannot_be_written_after_the_run_is_one_line_and_exit_4(pytester: pytest.Pytester) -> None:
    """The path is checked before the run; if its directory goes away during the run, the end says so in one
    line instead of a PermissionError traceback, and the exit status is not 0."""
    out = pytester.path / "out"
    out.mkdir()
    pytester.makepyfile(
        f"""
        import shutil

        def test_removes_the_report_directory():
            shutil.rmtree({str(out)!r})
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-report={out / 'r.json'}", timeout=120)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    result.stdout.fnmatch_lines([f"sagemaker-contract: cannot write the contract report to {out / 'r.json'} (*"])
    assert "Traceback" not in output
    assert not (out / "r.json").exists()


def test_the_report_replaces_a_link_instead_of_writing_through_it(pytester: pytest.Pytester) -> None:
    target = pytester.path / "elsewhere.txt"
    target.write_text("keep me\n")
    link = pytester.path / "r.json"
    link.symlink_to(target)
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sm-report={link}", timeout=120)
    assert result.ret == pytest.ExitCode.OK
    assert target.read_text() == "keep me\n"
    assert not link.is_symlink()
    assert Path(link).read_text().startswith("{")


def test_a_fifo_inside_a_channel_directory_is_not_uploaded(tmp_path: Path) -> None:
    """Channels staged through S3 (Pipe, sharding) skip what is not a regular file, as local staging does:
    opening a FIFO to upload it would block the job's staging forever."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.csv").write_text("1,2\n")
    os.mkfifo(data / "pipe")
    with S3Server() as s3:
        assert s3.upload_path(data, "s3://data/train") == 1
        assert s3.get_bytes("s3://data/train/part-0.csv") == b"1,2\n"


def test_a_user_tests_job_beyond_the_bound_fails_before_any_container(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_big(training_job):
            training_job(image="x", instance_count=3).run()
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--sm-no-suite", "--sm-max-hosts=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*training job sm-contract-*: 3 hosts: more than one job may start here (--sm-max-hosts 2); lower the count*"]
    )
