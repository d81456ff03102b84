"""Live progress of the running training jobs, through pytest's terminal reporter.

On a terminal: one status line per running job (its name, phase, elapsed time, last log line),
redrawn in place under pytest's own output while pytest waits for a check. In a CI log (no TTY):
a plain line per job at each phase change and every 30 s, between whole lines of pytest's own. `-q` shows
nothing until the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _pytest.pathlib import bestrelpath

from .session import session_of

__all__ = ["Progress"]

#: How often a job's line is repeated in a log without a TTY when its phase does not change.
LOG_EVERY_S = 30.0
_PHASES = {"Starting": "starting", "Downloading": "staging", "Training": "training", "Uploading": "uploading"}


class Progress:
    """Registered as a plugin: it clears its lines before pytest reports a test."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._drawn = False
        self._first_seen: dict[int, float] = {}
        self._logged: dict[int, tuple[str, float]] = {}
        #: The module prefix of pytest's line of dots, to write again before the next outcome (no TTY).
        self._owed_prefix: Path | None = None

    @property
    def _reporter(self) -> Any:
        if self.config.option.verbose < 0:
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _jobs(self) -> list[Any]:
        session = session_of(self.config)
        if not session.started:
            return []
        live: list[Any] = list(session.platform().live_jobs)
        jobs = [job for job in live if not job.done]
        now = time.time()
        for job in jobs:
            self._first_seen.setdefault(id(job), now)
        return sorted(jobs, key=lambda job: self._first_seen[id(job)])

    def _phase(self, job: Any, now: float) -> str:
        if job.timeline.sigterm_sent is not None and job.secondary_status == "Stopping":
            if job.kill_due is not None:
                return f"SIGTERM sent, {max(0.0, job.kill_due - now):.0f} s of grace left"
            return "SIGTERM sent"
        return _PHASES.get(job.secondary_status, str(job.secondary_status).lower())

    def _line(self, job: Any, phase: str, now: float, width: int) -> str:
        since = job.timeline.started or job.timeline.created or self._first_seen[id(job)]
        elapsed = max(0.0, now - since)
        last = job.last_log_line().strip()
        text = f"  {job.spec.name}  {phase}  {elapsed:.0f}s" + (f"  | {last}" if last else "")
        return text[: max(20, width - 1)]

    def tick(self) -> None:
        """Called while pytest waits for a check: redraw (TTY) or log phase changes (no TTY).

        It runs inside the test's call phase, where pytest captures the process's output: capturing is
        suspended while it writes, so the lines reach the terminal rather than the test's captured output.
        """
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            self._tick()
            return
        with capture.global_and_fixture_disabled():
            self._tick()

    def _tick(self) -> None:
        reporter = self._reporter
        if reporter is None:
            return
        now = time.time()
        jobs = self._jobs()
        tw = reporter._tw
        if reporter.isatty:
            self.clear()
            if not jobs:
                return
            lines = [self._line(job, self._phase(job, now), now, tw.fullwidth) for job in jobs]
            column = tw.width_of_current_line
            out = tw._file
            out.write("\n" + "\n".join(lines) + f"\x1b[{len(lines)}A\x1b[{column + 1}G")
            out.flush()
            self._drawn = True
            return
        due = []
        for job in jobs:
            phase = self._phase(job, now)
            shown = phase.split(",")[0]
            last_phase, last_time = self._logged.get(id(job), ("", 0.0))
            if shown != last_phase or now - last_time >= LOG_EVERY_S:
                self._logged[id(job)] = (shown, now)
                due.append("sagemaker-contract:" + self._line(job, phase, now, 200))
        if due:
            self._between_pytest_lines(reporter, due)

    def _between_pytest_lines(self, reporter: Any, lines: list[str]) -> None:
        """Write `lines` in a log without splitting pytest's own lines: a line of dots is ended the way pytest
        ends it (with its percentage), and the next outcome starts a new one with its prefix again, so every line
        of the log is whole: `module ..... [ 40%]`, ours, `module ... [100%]`."""
        tw = reporter._tw
        resume = reporter.currentfspath
        if tw.width_of_current_line > 0:
            if isinstance(resume, Path) and getattr(reporter, "_show_progress_info", False):
                reporter._write_progress_information_filling_space()
            tw.line()
        for line in lines:
            tw.line(line)
        tw.flush()
        # -v: pytest writes the test's location again with its outcome; a line of dots: we write its prefix
        # just before the next outcome (`pytest_runtest_logreport`), so no line holds a prefix alone.
        reporter.currentfspath = None
        if isinstance(resume, Path):
            self._owed_prefix = resume

    def clear(self) -> None:
        """Erase the status block (TTY); called before pytest writes, when capturing is already off."""
        if not self._drawn:
            return
        reporter = self._reporter
        if reporter is not None:
            reporter._tw._file.write("\x1b[J")
            reporter._tw._file.flush()
        self._drawn = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.clear()
        owed, self._owed_prefix = self._owed_prefix, None
        reporter = self._reporter
        if owed is None or reporter is None or reporter.currentfspath is not None:
            return
        if reporter._tw.width_of_current_line == 0 and reporter.config.get_verbosity() <= 0:
            reporter._tw.write(bestrelpath(reporter.startpath, owed) + " ")
            reporter.currentfspath = owed

    @pytest.hookimpl(tryfirst=True)
    def pytest_terminal_summary(self) -> None:
        self.clear()
