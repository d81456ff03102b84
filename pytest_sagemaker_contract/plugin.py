"""pytest hooks only: options and ini keys, markers, collection of the contract suite, report hooks."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import pytest

from . import contract
from . import fixtures as fixtures_module
from .contract import NOTE_KEY, ContractItem, ContractModule
from .contract.scheduler import CheckScheduler
from .contract.suite import PREFETCH_KEY, ImageContexts
from .fixtures import JOB_MARKER_KEYWORDS, marker_defaults
from .gpu_support import gpu_skip_reason
from .progress import Progress
from .report import ContractReport, properties_for
from .report_html import HtmlReport
from .report_junit import JUnitDetails, detail_properties
from .report_timeline import JOBS_KEY
from .reuse import VERDICTS_KEY, WORKER_KEYS, Verdict, VerdictCache, reused_property, worth_keeping
from .session import SESSION_KEY, ContractSession, session_of
from .settings import add_options, resolve

REPORT_KEY = pytest.StashKey[ContractReport]()
_PROGRESS_KEY = pytest.StashKey[Progress]()
_SCHEDULER_KEY = pytest.StashKey[CheckScheduler]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"sagemaker_job({', '.join(JOB_MARKER_KEYWORDS)}): defaults for the training_job fixture in this "
        "test, class or module (same keywords as the factory)",
    )
    config.addinivalue_line(
        "markers", "sagemaker_gpu: the test needs GPUs in the container; skipped where none can be given"
    )
    config.addinivalue_line(
        "markers",
        "sagemaker_needs_s3: the test's image calls S3 itself; skipped where this engine's containers cannot "
        "reach the session's S3",
    )
    settings = resolve(config)
    config.stash[SESSION_KEY] = ContractSession(config, settings)
    ImageContexts.install(config)
    if settings.reuse and settings.suite:
        _install_reuse(config)
    if not config.pluginmanager.has_plugin("sagemaker_contract.fixtures"):
        config.pluginmanager.register(fixtures_module, "sagemaker_contract.fixtures")
    if not config.pluginmanager.has_plugin("sagemaker_contract.suite"):
        config.pluginmanager.register(contract, "sagemaker_contract.suite")
    is_worker = hasattr(config, "workerinput")
    if not is_worker:
        progress = Progress(config)
        config.pluginmanager.register(progress, "sagemaker_contract.progress")
        config.stash[_PROGRESS_KEY] = progress
    report = ContractReport(settings.report, is_worker=is_worker)
    config.stash[REPORT_KEY] = report
    config.pluginmanager.register(report, "sagemaker_contract.report")
    if not is_worker:
        config.pluginmanager.register(JUnitDetails(config), "sagemaker_contract.junit")
        config.pluginmanager.register(HtmlReport(settings.html, report), "sagemaker_contract.html")
    _install_stop_handlers(config)


def _install_reuse(config: pytest.Config) -> None:
    """--sm-reuse keeps verdicts in pytest's cache: without the cache plugin there is nowhere to keep them."""
    cache = getattr(config, "cache", None)
    if cache is None:
        raise pytest.UsageError(
            "--sm-reuse: pytest's cache is off (-p no:cacheprovider), and verdicts are kept there; "
            "drop -p no:cacheprovider or drop --sm-reuse"
        )
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    config.stash[VERDICTS_KEY] = VerdictCache(cache, session_of(config), workerinput.get(WORKER_KEYS))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: the controller keys each image once (the channels hashed once) and hands the keys to its workers."""
    verdicts = node.config.stash.get(VERDICTS_KEY, None)
    if verdicts is not None:
        node.workerinput[WORKER_KEYS] = verdicts.image_keys(session_of(node.config).settings.images)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Measure the engine for the header (printed right after this hook, by the terminal's own), and schedule the
    suite's checks concurrently (--sm-parallel) except in xdist workers, which run theirs one at a time."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    session_of(config).measure_for_header()
    if not session_of(config).settings.suite:
        return
    progress = config.stash.get(_PROGRESS_KEY, None)
    scheduler = CheckScheduler(session, session_of(config).parallel, progress.tick if progress else None)
    config.stash[PREFETCH_KEY] = scheduler
    config.stash[_SCHEDULER_KEY] = scheduler


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Only reads: the options and what `pytest_sessionstart` measured (no engine call here)."""
    return session_of(config).header()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("sagemaker_job") is not None:
            marker_defaults(item)  # a typo in the marker is a usage error now, not a silently ignored keyword
    settings = session_of(config).settings
    if not settings.suite:
        return
    for image in settings.images:
        module = ContractModule.for_image(session, image)
        collected = [item for item in module.collect() if isinstance(item, pytest.Item)]
        session.ihook.pytest_collectreport(report=pytest.CollectReport(module.nodeid, "passed", None, list(collected)))
        items.extend(collected)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if not isinstance(item, ContractItem):
        return report
    decisive = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
    if not decisive:
        return report
    note = item.stash[NOTE_KEY]
    if report.when == "call" and note.duration_s is not None:
        report.duration = note.duration_s  # the check's own time, not pytest's wait for it
    message = note.message or _reason(report)
    props = properties_for(
        check_id=note.check_id,
        clause=note.clause,
        image=note.image,
        image_id=note.image_id,
        outcome=report.outcome,
        message=message,
        duration_s=report.duration,
        log_path=note.log_path,
        warnings=note.warnings,
        skip_kind=note.skip_kind,
    )
    props.append(("sm_phase", report.when))
    item.user_properties.extend(props)
    report.user_properties.extend(props)
    # Only on this report, not the item: JUnit's <property> list stays as it was (system-out shows them there).
    jobs = item.stash.get(JOBS_KEY, None) or []
    report.user_properties.extend(detail_properties(note.log_tail, note.sections, jobs))
    if note.reused is not None:
        item.user_properties.append(reused_property(note.reused))  # a JUnit <property> too
        report.user_properties.append(reused_property(note.reused))
        if note.reused.timeline:
            report.user_properties.append(("sm_timeline", note.reused.timeline))
    elif report.when == "call":
        _keep_verdict(item, report, call)
    if report.failed:
        report.sections.extend(note.sections)
        if note.log_tail:
            full = f"\n(full log: {note.log_path})" if note.log_path else ""
            report.sections.append(("sagemaker log (tail)", note.log_tail + full))
    return report


def _keep_verdict(item: ContractItem, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
    """--sm-reuse: keep the verdict when it is one about the image (reuse.worth_keeping)."""
    verdicts = item.config.stash.get(VERDICTS_KEY, None)
    note = item.stash[NOTE_KEY]
    if verdicts is None or not isinstance(item.parent, ContractModule):
        return
    error = call.excinfo.value if call.excinfo is not None else None
    decided = isinstance(error, pytest.fail.Exception) and note.failed_by_check
    if not worth_keeping(report.outcome, note.skip_kind, decided, note.environment_fault):
        return
    reason = (error.msg or "") if isinstance(error, (pytest.fail.Exception, pytest.skip.Exception)) else ""
    verdict = Verdict.of(note, report.outcome, reason, report.user_properties, session_of(item.config).run_id)
    verdicts.keep(item.parent.image, note.check_id, verdict)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.sagemaker_gpu`: skip, with the detection's reason, where no GPU can be given.
    `@pytest.mark.sagemaker_needs_s3`: skip where this engine's containers cannot reach the session's S3."""
    if item.get_closest_marker("sagemaker_needs_s3") is not None:
        unreachable = session_of(item.config).container_s3_unavailable()
        if unreachable is not None:
            pytest.skip(f"sagemaker_needs_s3: this engine's containers cannot reach the session's S3 ({unreachable})")
    if item.get_closest_marker("sagemaker_gpu") is None:
        return
    defaults = marker_defaults(item)
    reason = gpu_skip_reason(item.config, defaults.get("instance_type"), defaults.get("gpus"))
    if reason is not None:
        pytest.skip(f"sagemaker_gpu: {reason}")


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = str(report.longrepr or "").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("E ").strip() if lines else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    scheduler = session.config.stash.get(_SCHEDULER_KEY, None)
    if scheduler is not None:
        scheduler.close()
    sm = session.config.stash.get(SESSION_KEY, None)
    if sm is None:
        return
    if exitstatus != pytest.ExitCode.INTERRUPTED:
        sm.close()
        return

    # One more Ctrl-C ends the short SIGTERM wait; any after it cannot stop the removal.
    def second_interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = _install(signal.SIGINT, second_interrupt)
    try:
        sm.close(interrupted=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


_STOP_SIGNALS = ("SIGTERM", "SIGHUP")
_PREVIOUS_HANDLERS = pytest.StashKey[dict[int, Any]]()


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP of the test process end the session like Ctrl-C: jobs stopped, containers removed."""
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def _install(signum: int, handler: Callable[[int, FrameType | None], None]) -> Any:
    """Install `handler` where signals can be handled (the main thread); the previous handler, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signum, handler)


def _install_stop_handlers(config: pytest.Config) -> None:
    previous: dict[int, Any] = {}
    for name in _STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) is not signal.SIG_DFL:
            continue  # someone else (a CI runner, another plugin) handles it: leave theirs in place
        old = _install(signum, _as_interrupt)
        if old is not None:
            previous[signum] = old
    config.stash[_PREVIOUS_HANDLERS] = previous


def pytest_unconfigure(config: pytest.Config) -> None:
    for signum, handler in config.stash.get(_PREVIOUS_HANDLERS, {}).items():
        if threading.current_thread() is threading.main_thread():
            signal.signal(signum, handler)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    sm = config.stash.get(SESSION_KEY, None)
    if sm is None:
        return
    if sm.reaped:
        terminalreporter.write_line(
            f"sagemaker-contract: removed {len(sm.reaped)} leftover(s) of sessions that died before cleaning up: "
            + ", ".join(sm.reaped[:5])
            + (" …" if len(sm.reaped) > 5 else "")
        )
    for warning in sm.reap_warnings:
        terminalreporter.write_line(f"sagemaker-contract: warning: {warning}")
    verdicts = config.stash.get(VERDICTS_KEY, None)
    if verdicts is not None:
        for line in verdicts.what_changed(sm.settings.images):
            terminalreporter.write_line(line)
    for path in sm.kept:
        terminalreporter.write_line(
            f"sagemaker-contract: kept job directories under {path} and containers labelled "
            f"sm-contract.run={sm.run_id} (--sm-keep); remove them with: "
            f"docker rm -f $(docker ps -aq --filter label=sm-contract.run={sm.run_id}); rm -rf {path}"
        )
