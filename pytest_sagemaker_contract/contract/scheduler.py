"""An image's checks run concurrently: each its own job, at most `--sm-parallel` at a time.

pytest runs items one after another; a training job takes minutes. When pytest reaches the first
check of an image, the scheduler starts every selected check of that image on a thread pool (in
suite order, so the default run starts first); each item then waits for its own outcome and reports
it, with its own duration, in the usual order. The main thread shows progress while it waits.
Under pytest-xdist a worker only learns its items one at a time, so workers run their checks as
they come (the xdist workers are the concurrency there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from ..fixtures import TrainingJobFactory
from ..session import session_of
from .suite import CheckContext, CheckResult, ContractItem, ContractModule, capture, run_check

__all__ = ["CheckScheduler"]

#: How often the main thread wakes while waiting, to redraw progress.
TICK_S = 1.0


class CheckScheduler:
    def __init__(self, session: pytest.Session, parallel: int, on_wait: Callable[[], None] | None = None) -> None:
        self.session = session
        self.parallel = parallel
        self.on_wait = on_wait
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sm-check")
        self._futures: dict[str, Future[CheckResult]] = {}
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def outcome(self, item: ContractItem) -> CheckResult | None:
        """The item's outcome (waiting for it), or None when it was not scheduled (run it in place)."""
        future = self._schedule(item)
        if future is None:
            return None
        while True:
            try:
                return future.result(timeout=TICK_S)
            except FutureTimeout:
                if self.on_wait is not None:
                    self.on_wait()

    def _schedule(self, item: ContractItem) -> Future[CheckResult] | None:
        module = item.parent
        if not isinstance(module, ContractModule):
            return None
        with self._lock:
            if self._closed:
                return None
            if module.nodeid not in self._started:
                self._started.add(module.nodeid)
                for other in self.session.items:
                    if isinstance(other, ContractItem) and other.parent is module and other.kept_verdict() is None:
                        self._futures[other.nodeid] = self._pool.submit(_run, other)
            return self._futures.get(item.nodeid)

    def close(self) -> None:
        """Cancel what has not started; the running checks' jobs are stopped by the platform's close."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


def _run(item: ContractItem) -> CheckResult:
    """One check off pytest's thread, with the same fixtures the in-place path resolves."""
    started = time.monotonic()

    def call() -> None:
        module = item.parent
        assert isinstance(module, ContractModule)
        session = session_of(item.config)
        jobs = TrainingJobFactory(session, None, {}, node=item)
        run_check(CheckContext(item, module.image, jobs, session.platform()), item.check.func)

    return CheckResult(capture(call), time.monotonic() - started)
