"""Log capture: every host's lines in arrival order, waitable by regex."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

__all__ = ["LogBuffer", "LogSink"]

#: Called with (host, line) for every line as it arrives.
LogSink = Callable[[str, str], None]


class LogBuffer:
    """Lines from every host, in arrival order, waitable by regex."""

    def __init__(self, multi_host: bool, sink: LogSink | None) -> None:
        self._lines: list[str] = []
        self._times: list[float] = []
        self._cond = threading.Condition()
        self._multi = multi_host
        self._sink = sink

    def add(self, host: str, line: str) -> None:
        text = f"[{host}] {line}" if self._multi else line
        with self._cond:
            self._lines.append(text)
            self._times.append(time.time())
            self._cond.notify_all()
        if self._sink is not None:
            self._sink(host, line)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def since(self, when: float) -> list[str]:
        """Lines that arrived at or after `when` (epoch seconds)."""
        with self._cond:
            return [line for line, t in zip(self._lines, self._times, strict=True) if t >= when]

    def wait_for(self, pattern: re.Pattern[str], timeout: float, done: threading.Event) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or done.is_set():
                    return None
                self._cond.wait(min(remaining, 0.25))
