"""Log capture without Docker: every line spooled to the file, a bounded window in memory, waiters see all."""

from __future__ import annotations

import gc
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_sagemaker_contract.platform import logs as logs_module
from pytest_sagemaker_contract.platform.job_run import follow_log
from pytest_sagemaker_contract.platform.logs import TRUNCATION_MARK, LogBuffer, durable_log_dir
from pytest_sagemaker_contract.platform.result import Timeline, TrainingJobResult


def buffer(tmp_path: Path, **kw: Any) -> LogBuffer:
    return LogBuffer(kw.pop("multi_host", False), kw.pop("sink", None), tmp_path / "job.log", **kw)


def result_with(logs: LogBuffer) -> TrainingJobResult:
    logs.close()
    return TrainingJobResult(
        TrainingJobName="j",
        TrainingJobArn="arn",
        TrainingJobStatus="Completed",
        SecondaryStatus="Completed",
        FailureReason=None,
        ModelArtifacts={},
        exit_code=0,
        hosts=[],
        logs=logs.text(),
        timeline=Timeline(),
        model_files=[],
        output_files=[],
        output_data_uri=None,
        model_clashes=[],
        not_simulated=(),
        checkpoints_restored=[],
        logs_after_sigterm=[],
        job_dir=None,
        s3=None,  # type: ignore[arg-type]
        log_path=logs.path,
    )


def test_a_small_log_is_whole_in_memory_and_in_the_file(tmp_path: Path) -> None:
    logs = buffer(tmp_path)
    for i in range(10):
        logs.add("algo-1", f"line {i}")
    assert logs.text() == "\n".join(f"line {i}" for i in range(10))
    logs.close()
    assert (tmp_path / "job.log").read_text() == "".join(f"line {i}\n" for i in range(10))


def test_lines_beyond_the_cap_are_in_the_file_and_the_text_says_where(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=5, text_cap=100)
    for i in range(1000):
        logs.add("algo-1", f"line {i}")
    logs.close()
    assert (tmp_path / "job.log").read_text().splitlines() == [f"line {i}" for i in range(1000)]
    text = logs.text().splitlines()
    assert text[0] == f"{TRUNCATION_MARK}5 lines; full log: {tmp_path / 'job.log'}]"
    assert text[1:] == [f"line {i}" for i in range(995, 1000)]
    assert logs.truncated
    assert logs.count == 1000


def test_memory_holds_a_bounded_window(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=50, text_cap=10_000)
    for i in range(20_000):
        logs.add("algo-1", f"{i:08d}" * 10)
    assert len(logs.tail(10_000)) <= 50
    assert len(logs.text()) < 10_000 + 200


def test_the_window_is_bounded_in_characters_but_keeps_the_last_line(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=100, text_cap=1000)
    logs.add_many("algo-1", ["x" * 600, "y" * 600, "z" * 2000])
    assert logs.tail(5) == ["z" * 2000]
    logs.close()
    assert len((tmp_path / "job.log").read_text()) == 3203


def test_multi_host_lines_are_prefixed_in_the_file_and_sink_gets_the_raw_line(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    logs = buffer(tmp_path, multi_host=True, sink=lambda host, line: seen.append((host, line)))
    logs.add_many("algo-2", ["a", "b"])
    logs.close()
    assert (tmp_path / "job.log").read_text() == "[algo-2] a\n[algo-2] b\n"
    assert seen == [("algo-2", "a"), ("algo-2", "b")]


def test_a_line_after_close_is_still_appended(tmp_path: Path) -> None:
    logs = buffer(tmp_path)
    logs.add("algo-1", "before")
    logs.close()
    logs.add("algo-1", "late")
    assert (tmp_path / "job.log").read_text() == "before\nlate\n"
    assert logs.text() == "before\nlate"


def test_log_tail_is_the_real_last_lines_of_a_truncated_log(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=3, text_cap=50)
    for i in range(100):
        logs.add("algo-1", f"line {i}")
    logs.add("algo-1", "the real last line")
    result = result_with(logs)
    assert result.log_tail(1) == "the real last line"
    assert result.log_tail(30).splitlines() == ["line 98", "line 99", "the real last line"]  # never the header


class _FakeEngine:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def follow_logs(self, container_id: str) -> Iterator[bytes]:
        yield from self.chunks


def _follow(chunks: list[bytes], logs: LogBuffer, engine: _FakeEngine | None = None) -> Any:
    run = SimpleNamespace(container_id="c", host=SimpleNamespace(name="algo-1"), log_error=None)
    follow_log(engine or _FakeEngine(chunks), run, logs)  # type: ignore[arg-type]
    return run


def test_the_follower_keeps_a_last_line_without_newline_past_the_window(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=10, text_cap=200)
    body = b"".join(b"0123456789012345678901234567890123456789\n" for _ in range(5000))
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] + [b"the real ", b"last line"]
    _follow(chunks, logs)
    result = result_with(logs)
    assert result.log_tail(1) == "the real last line"
    assert (tmp_path / "job.log").read_bytes() == body + b"the real last line\n"


def test_the_follower_splits_an_endless_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_sagemaker_contract.platform.job_run.MAX_LINE_BYTES", 100)
    logs = buffer(tmp_path)
    _follow([b"x" * 150, b"y" * 150, b"\nend"], logs)
    assert all(len(line) <= 400 for line in logs.tail(10))
    logs.close()
    assert (tmp_path / "job.log").read_text().replace("\n", "") == "x" * 150 + "y" * 150 + "end"


def test_a_broken_stream_is_recorded(tmp_path: Path) -> None:
    class Broken(_FakeEngine):
        def follow_logs(self, container_id: str) -> Iterator[bytes]:
            yield b"one\ntwo"
            raise ConnectionError("engine went away")

    logs = buffer(tmp_path)
    run = _follow([], logs, Broken([]))
    assert run.log_error == "ConnectionError: engine went away"
    assert logs.text() == "one\ntwo"


class _SignallingList(list[Any]):
    """The buffer's waiter list, telling the test when a waiter has registered."""

    def __init__(self) -> None:
        super().__init__()
        self.registered = threading.Event()

    def append(self, item: Any) -> None:
        super().append(item)
        self.registered.set()


def test_wait_for_sees_a_line_that_arrived_after_the_window_rolled(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=5, text_cap=10_000)
    waiters = _SignallingList()
    logs._waiters = waiters
    found: list[re.Match[str] | None] = []
    logs.add("algo-1", "first")
    waiter = threading.Thread(
        target=lambda: found.append(logs.wait_for(re.compile(r"^needle (\d+)$"), 30, threading.Event()))
    )
    waiter.start()
    assert waiters.registered.wait(30), "the waiter never registered"
    # One batch: the needle has left the 5-line window before the waiter can look at the window again.
    logs.add_many("algo-1", [f"noise {i}" for i in range(100)] + ["needle 7"] + [f"noise {i}" for i in range(100)])
    waiter.join(30)
    assert found
    assert found[0] is not None
    assert found[0].group(1) == "7"
    assert "needle 7" not in logs.tail(5)


def test_wait_for_finds_a_line_that_already_left_the_window(tmp_path: Path) -> None:
    logs = buffer(tmp_path, tail_lines=5, text_cap=10_000)
    logs.add_many("algo-1", ["early", "needle 3"] + [f"noise {i}" for i in range(100)])
    match = logs.wait_for(re.compile(r"needle (\d)"), 0.1, threading.Event())
    assert match is not None
    assert match.group(1) == "3"


def test_wait_for_returns_none_when_done(tmp_path: Path) -> None:
    logs = buffer(tmp_path)
    done = threading.Event()
    done.set()
    assert logs.wait_for(re.compile("never"), 30, done) is None


def test_since_returns_the_lines_at_or_after_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(logs_module, "time", SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic))
    logs = buffer(tmp_path)
    logs.add("algo-1", "before")
    clock[0] = 200.0
    logs.add_many("algo-1", ["at", "after"])
    clock[0] = 300.0
    logs.add("algo-1", "later")
    assert logs.since(200.0) == ["at", "after", "later"]
    assert logs.since(250.0) == ["later"]
    assert logs.since(400.0) == []


def test_the_spooled_log_goes_with_the_result_unless_kept(tmp_path: Path) -> None:
    logs = buffer(tmp_path)
    logs.add("algo-1", "x")
    result = result_with(logs)
    result.discard_log_with_result()
    del result
    gc.collect()
    assert not (tmp_path / "job.log").exists()

    logs = LogBuffer(False, None, tmp_path / "kept" / "job.log")
    logs.add("algo-1", "y")
    kept = result_with(logs)
    kept.discard_log_with_result()
    assert kept.keep_log() == tmp_path / "kept" / "job.log"
    del kept
    gc.collect()
    assert (tmp_path / "kept" / "job.log").read_text() == "y\n"


def test_durable_log_dir_is_private_and_outside_the_work_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = durable_log_dir("run1")
    assert folder == tmp_path / f"sm-contract-logs-{os.getuid()}" / "run1"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
