"""The machinery of the built-in suite: the check registry, its collection nodes, and `sm_contract`.

Each check is a plain function over the public fixtures plus `sm_contract` (a `CheckContext`: one check's
handle on its image; what several checks of an image share, its static facts and its default run, is the
session's `ImageContext`, kept in `config.stash`). The checks themselves live one module per clause family
beside this one.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import pytest

from ..fixtures import JobRequest, TrainingJobFactory
from ..image_facts import ImageFacts, read_image
from ..platform import TrainingJob, TrainingJobResult, TrainingPlatform
from ..platform.logs import durable_log_dir
from ..reuse import VERDICTS_KEY, Verdict
from ..session import SUITE_IMAGE_KEY, session_of
from ..settings import Settings
from .model import model_verdict

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..jobs import JobOverrides

__all__ = [
    "CHECKS",
    "Check",
    "CheckContext",
    "CheckNote",
    "ContractItem",
    "ContractModule",
    "ImageContext",
    "ImageContexts",
    "SageMakerContractWarning",
    "check",
]


class SageMakerContractWarning(UserWarning):
    """A clause that passes on SageMaker today but leans on behaviour AWS reserves the right to change."""


@dataclass(frozen=True)
class Check:
    id: str
    clause: str
    summary: str
    func: Callable[..., None]


CHECKS: list[Check] = []


def check(check_id: str, clause: str, summary: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a contract check; `summary` is what a pass proves (README's check table)."""

    def register(func: Callable[..., None]) -> Callable[..., None]:
        CHECKS.append(Check(check_id, clause, summary, func))
        return func

    return register


@dataclass
class CheckNote:
    """What a check says about itself, whatever its outcome; read by the report."""

    check_id: str
    clause: str
    image: str
    message: str = ""
    image_id: str = ""
    log_tail: str = ""
    log_path: str = ""
    warnings: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    #: The check's own running time (under concurrency pytest's duration is the wait for it).
    duration_s: float | None = None
    #: Time spent waiting for work another check did (the shared image-facts read, the default run):
    #: not part of this check's own duration.
    waited_s: float = 0.0
    #: For a skip: "structural" (the clause does not apply to this job or image, e.g. a GPU check on an
    #: instance type without GPUs) or "untested" (it applies but this run could not test it: --sm-strict fails it).
    skip_kind: str = ""
    #: A failure the check decided about the image (`CheckContext.fail`, or blocked by SM-RUN-DEFAULT): --sm-reuse
    #: may replay it; a crash or an outside error may not.
    failed_by_check: bool = False
    #: The environment decided (an engine fault, containers that cannot reach S3): --sm-reuse never replays it.
    environment_fault: bool = False
    #: --sm-reuse: the kept verdict replayed instead of running the check.
    reused: Verdict | None = None


NOTE_KEY = pytest.StashKey[CheckNote]()


class ContractModule(pytest.Module):
    """The suite for one image: a module node (so module-scoped fixtures work) named after the image."""

    image: str

    @classmethod
    def for_image(cls, session: pytest.Session, image: str) -> ContractModule:
        node = cls.from_parent(
            session,
            path=Path(__file__),
            name=f"sagemaker-contract/{image}",
            nodeid=f"sagemaker-contract/{image}",
        )
        node.image = image
        node.stash[SUITE_IMAGE_KEY] = image
        return node

    def _getobj(self) -> Any:
        return sys.modules[__name__]

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return [ContractItem.from_parent(self, name=c.id, callobj=c.func, check=c) for c in CHECKS]


class ContractItem(pytest.Function):
    """One contract check against one image."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        image = self.parent.image if isinstance(self.parent, ContractModule) else ""
        self.stash[NOTE_KEY] = CheckNote(check.id, check.clause, image)

    @classmethod
    def from_parent(cls, parent: Any, **kwargs: Any) -> ContractItem:
        item: ContractItem = super().from_parent(parent, **kwargs)
        return item

    def runtest(self) -> None:
        note_ = self.stash[NOTE_KEY]
        reused = self.kept_verdict()
        prefetch = self.config.stash.get(PREFETCH_KEY, None)
        if reused is not None:
            note_.reused = reused
            outcome: CheckResult | None = CheckResult(reused.replay(note_, self.user_properties))
        else:
            outcome = prefetch.outcome(self) if prefetch is not None else None
        if outcome is None:
            context = self.funcargs["sm_contract"]
            assert isinstance(context, CheckContext)
            started = time.monotonic()
            outcome = CheckResult(capture(lambda: run_check(context, self.check.func)))
            outcome.duration_s = time.monotonic() - started
        note_.duration_s = max(0.0, outcome.duration_s - note_.waited_s)
        for message in note_.warnings:
            warnings.warn(SageMakerContractWarning(message), stacklevel=1)
        if isinstance(outcome.error, pytest.skip.Exception):
            note_.skip_kind = note_.skip_kind or "untested"
            if note_.skip_kind == "untested" and session_of(self.config).settings.strict:
                reason = note_.message or str(outcome.error.msg)
                note_.message = f"not tested (--sm-strict): {reason}"
                raise pytest.fail.Exception(f"{self.check.id}: {note_.message}", pytrace=False)
        if outcome.error is not None:
            if not note_.message:  # the table shows the failure's first line, not the end of a log tail
                note_.message = str(outcome.error).strip().splitlines()[0] if str(outcome.error).strip() else ""
            raise outcome.error

    def setup(self) -> None:
        """A replayed verdict needs no fixtures: `sm_contract` would start the platform (S3, a work directory)."""
        if self.kept_verdict() is None:
            super().setup()

    def kept_verdict(self) -> Verdict | None:
        """--sm-reuse: this check's kept verdict for the image as it is now, or None (run it)."""
        verdicts = self.config.stash.get(VERDICTS_KEY, None)
        if verdicts is None or not isinstance(self.parent, ContractModule):
            return None
        return verdicts.lookup(self.parent.image, self.check.id)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        code = self.check.func.__code__
        return Path(code.co_filename), code.co_firstlineno - 1, f"{self.parent.name}::{self.name}"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------
# The per-image context


@dataclass
class CheckResult:
    """How one check ended: the exception it raised (a pytest outcome or an error), or None for a pass."""

    error: BaseException | None
    duration_s: float = 0.0


class Prefetch(Protocol):
    """Runs checks ahead of pytest (concurrently) and hands their outcomes over when pytest reaches them."""

    def outcome(self, item: ContractItem) -> CheckResult | None: ...


PREFETCH_KEY = pytest.StashKey[Prefetch]()


def capture(call: Callable[[], None]) -> BaseException | None:
    """Run `call`; the exception it ended with (pytest's skip/fail outcomes included), or None."""
    try:
        call()
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
        return exc
    return None


def run_check(context: CheckContext, func: Callable[..., None]) -> None:
    """Run one check; when it depends on the default run and that failed, report the pointer instead."""
    error = capture(lambda: func(sm_contract=context))
    if context.needs_default:
        context.require_default()
    if error is not None:
        raise error


class ImageContext:
    """What the checks of one image share within one session: its facts and its default run.

    Facts and the default run have locks of their own: checks running concurrently read the facts
    while the default run is still training.
    """

    def __init__(self, image: str) -> None:
        self.image = image
        self._facts_lock = threading.Lock()
        self._default_lock = threading.Lock()
        self._facts: ImageFacts | None = None
        self._facts_error: str | None = None
        self._default: TrainingJobResult | None = None
        self._default_error: BaseException | None = None

    def facts(self, platform: TrainingPlatform) -> tuple[ImageFacts, bool]:
        """The image's facts, and whether this call read them (else it waited for, or reused, another's read)."""
        read_here = False
        with self._facts_lock:
            if self._facts is None and self._facts_error is None:
                read_here = True
                try:
                    platform.engine.image(self.image)
                    self._facts = read_image(platform.engine, self.image)
                except Exception as exc:
                    self._facts_error = f"cannot inspect {self.image}: {exc}"
            if self._facts is None:
                pytest.fail(self._facts_error or f"cannot inspect {self.image}", pytrace=False)
            return self._facts, read_here

    def default_result(self, run: Callable[[], TrainingJobResult]) -> TrainingJobResult:
        """The default run, run once: every caller gets its result, or the same failure it raised."""
        with self._default_lock:
            if self._default is None and self._default_error is None:
                try:
                    self._default = run()
                except (Exception, pytest.fail.Exception) as exc:
                    self._default_error = exc
            if self._default_error is not None:
                raise self._default_error
            assert self._default is not None
            return self._default

    def default_if_done(self) -> TrainingJobResult | None:
        """The default run's result when it has finished, else None (never waits)."""
        if self._default_lock.acquire(blocking=False):
            try:
                return self._default
            finally:
                self._default_lock.release()
        return None


class ImageContexts:
    """The session's `ImageContext` per image, kept in `config.stash`: a second session in the same process
    (`pytest.main` twice, `pytester.runpytest_inprocess`) starts from nothing, never from the first one's facts
    or its default run (whose S3 has stopped)."""

    KEY = pytest.StashKey["ImageContexts"]()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_image: dict[str, ImageContext] = {}

    @classmethod
    def install(cls, config: pytest.Config) -> None:
        """Called once per session, at configure time (before any check thread can ask)."""
        config.stash[cls.KEY] = cls()

    @classmethod
    def of(cls, config: pytest.Config, image: str) -> ImageContext:
        contexts = config.stash[cls.KEY]
        with contexts._lock:
            return contexts._by_image.setdefault(image, ImageContext(image))


@dataclass(frozen=True)
class Invocations:
    """The ContainerEntrypoint/ContainerArguments each SM-RUN shape sends."""

    #: SM-RUN-ENTRYPOINT: ContainerEntrypoint alone.
    entrypoint: tuple[str, ...]
    #: SM-RUN-ARGUMENTS: ContainerArguments alone.
    arguments: tuple[str, ...]
    #: SM-RUN-BOTH: (ContainerEntrypoint, ContainerArguments), or None when nothing can be derived.
    both: tuple[tuple[str, ...], tuple[str, ...]] | None


def invocation_for(
    facts: ImageFacts, spec_entrypoint: tuple[str, ...] | None, spec_arguments: tuple[str, ...] | None
) -> Invocations:
    """The ContainerEntrypoint/ContainerArguments each SM-RUN shape uses (README: "How the values are derived").

    The job file's own values win; otherwise they are derived from the image. ContainerEntrypoint alone
    is the image's ENTRYPOINT as it is (or `train` without one) and gets no arguments, as SageMaker
    starts it: no `train` argument, the image CMD dropped. The other shapes should train exactly as
    `docker run IMAGE train` does.
    """
    image_ep = tuple(facts.entrypoint or ())
    derived_ep: tuple[str, ...] = image_ep or ("train",)
    entrypoint_only = spec_entrypoint or derived_ep
    arguments_only = spec_arguments or ("train",)
    if spec_entrypoint and spec_arguments:
        both: tuple[tuple[str, ...], tuple[str, ...]] | None = (spec_entrypoint, spec_arguments)
    elif image_ep:
        both = (spec_entrypoint or image_ep, spec_arguments or ("train",))
    elif spec_entrypoint:
        both = (spec_entrypoint, spec_arguments or ("train",))
    elif facts.has_shell():
        both = (("/bin/sh", "-c"), spec_arguments or ("exec train",))
    else:
        both = None
    return Invocations(entrypoint_only, arguments_only, both)


def external_script(facts: ImageFacts) -> str:
    """The custom_entrypoint.sh SM-RUN-EXTERNAL-SCRIPT delivers through a channel: it runs the image's own command."""
    image_ep = tuple(facts.entrypoint or ())
    command = shlex.join((*image_ep, "train")) if image_ep else "train"
    return f'#!/bin/sh\necho "custom_entrypoint.sh: exec {command}"\nexec {command} "$@"\n'


def note(item: pytest.Item) -> CheckNote:
    return item.stash[NOTE_KEY]


def warn(item: pytest.Item, messages: Iterable[str]) -> None:
    """Record warnings for the report; `ContractItem.runtest` emits them on the test's own thread."""
    for message in messages:
        note(item).warnings.append(message)


class CheckContext:
    """The `sm_contract` fixture: one check's handle on its image, its runs and its report note.

    Everything it hands the checks is typed: the image's `ImageFacts`, the platform's `TrainingJobResult`
    and `TrainingJob`; the check's outcome is decided here (`fail`, `skip`, `says`) and in `run_check`.
    """

    def __init__(self, item: ContractItem, image: str, jobs: TrainingJobFactory, platform: TrainingPlatform) -> None:
        self.item = item
        self.image = image
        #: The `training_job` factory the check's runs are built with (the user's fixture, unchanged).
        self.jobs = jobs
        self.platform = platform
        self.session = session_of(item.config)
        self.shared = ImageContexts.of(item.config, image)
        self.note = note(item)
        #: Set by `depends_on_default`: the check's verdict stands only if the default run completed.
        self.needs_default = False

    @property
    def check_id(self) -> str:
        return self.note.check_id

    @property
    def settings(self) -> Settings:
        return self.session.settings

    def facts(self) -> ImageFacts:
        started = time.monotonic()
        facts, read_here = self.shared.facts(self.platform)
        if not read_here:
            self.note.waited_s += time.monotonic() - started
        self.note.image_id = facts.image_id
        return facts

    def says(self, message: str) -> None:
        """The one-line reason shown in the contract table for this check."""
        self.note.message = message

    def fail(self, message: str, result: TrainingJobResult | None = None) -> NoReturn:
        self.note.message = message
        self.note.failed_by_check = True
        if result is not None:
            self.attach_logs(result)
            if result.TrainingJobStatus == "Failed" and not result.engine_faults:
                hint = self._s3_hint()
                self.note.environment_fault = self.note.environment_fault or bool(hint)
                message += hint
        pytest.fail(f"{self.check_id} ({self.note.clause}): {message}", pytrace=False)

    def _s3_hint(self) -> str:
        """Where containers cannot reach S3, a failed run may be the engine's doing, not the image's: say so."""
        unreachable = self.session.container_s3_unavailable()
        if unreachable is None:
            return ""
        return (
            f". Note: this engine's containers cannot reach the session's S3 ({unreachable}); if the image calls "
            "S3 itself, this failure is the environment's: pass --sm-needs-s3 to skip such runs here, or run on "
            "an engine whose bridge is on this machine"
        )

    def _require_container_s3(self) -> None:
        """--sm-needs-s3: a run of an image that calls S3 itself proves nothing where S3 is out of its reach."""
        if not self.settings.needs_s3:
            return
        unreachable = self.session.container_s3_unavailable()
        if unreachable is not None:
            self.skip(
                f"the image calls S3 itself (--sm-needs-s3) and this engine's containers cannot reach the "
                f"session's S3 ({unreachable}); run on an engine whose bridge is on this machine"
            )

    def skip(self, message: str, *, structural: bool = False) -> NoReturn:
        """Skip this check, saying why. `structural`: the clause does not apply to this job or image, so the
        skip stands under --sm-strict; any other skip means the clause went untested, which --sm-strict fails."""
        self.note.message = message
        self.note.skip_kind = "structural" if structural else "untested"
        # Reported at the check's definition (the home of its clause), not inside this helper.
        raise pytest.skip.Exception(f"{self.check_id}: {message}", _use_item_location=True)

    def attach_logs(self, result: TrainingJobResult) -> None:
        """Put the log tail in the report and keep the full log where it outlives the session's work directory."""
        self.note.log_tail = result.log_tail(30)
        path = result.keep_log()
        if path is None:  # no spooled file (a result built elsewhere): write what the result holds
            path = durable_log_dir(self.platform.run_id) / f"{result.TrainingJobName}.log"
            path.write_text(result.logs)
        self.note.log_path = str(path)

    def fail_on_engine_fault(self, result: TrainingJobResult) -> None:
        """Fail, naming the environment, when the run was disturbed from outside: its outcome says nothing
        about the image, so no check may pass (or blame the image) on it."""
        if not result.engine_faults:
            return
        self.note.environment_fault = True
        self.fail(
            f"environment fault, not the image's: {'; '.join(result.engine_faults)}. The run proves nothing about "
            f"the image (the job ended {result.TrainingJobStatus}: {result.FailureReason}); rerun without touching "
            "the containers or the Docker engine while the suite runs",
            result,
        )

    def _name(self) -> str:
        request = self.settings.job_request or {}
        return f"{request.get('TrainingJobName', 'sm-contract')[:30]}-{self.check_id.lower()[3:]}"

    def request(self, **overrides: Unpack[JobOverrides]) -> JobRequest:
        """The job this check would send with `overrides` (built, not started), named after the check."""
        overrides.setdefault("name", self._name())
        return self.jobs(self.image, **overrides)

    def run(self, **overrides: Unpack[JobOverrides]) -> TrainingJobResult:
        self.facts()
        self._require_container_s3()
        result = self.request(**overrides).run()
        self.fail_on_engine_fault(result)
        return result

    def run_all(self, runs: Sequence[JobOverrides]) -> list[TrainingJobResult]:
        """Several runs of this check at once (within --sm-parallel), results in order."""
        self.facts()
        self._require_container_s3()
        results = self.jobs.run_all([self.request(**overrides) for overrides in runs])
        for result in results:
            self.fail_on_engine_fault(result)
        return results

    def start(self, **overrides: Unpack[JobOverrides]) -> TrainingJob:
        """A running job (CreateTrainingJob returned); the caller stops and waits for it."""
        self.facts()
        self._require_container_s3()
        return self.request(**overrides).start()

    def default_run(self) -> TrainingJobResult:
        """`docker run IMAGE train` with the session's job: run once per image, shared by the checks.

        A run disturbed from outside (an engine fault) fails every check that uses it, naming the fault.
        """
        self.facts()
        self._require_container_s3()
        name = self._name().replace(self.check_id.lower()[3:], "run-default")
        started = time.monotonic()
        result = self.shared.default_result(lambda: self.jobs(self.image, keep_invocation=False, name=name).run())
        if self.check_id != "SM-RUN-DEFAULT":  # the default run's time is SM-RUN-DEFAULT's, whoever started it
            self.note.waited_s += time.monotonic() - started
        self.fail_on_engine_fault(result)
        return result

    def depends_on_default(self) -> None:
        """This check means something only when the default run completes; don't wait for it here.

        The check runs its own job at once (concurrently with the default run); `run_check` looks at
        the default run when the check is done and, if it failed, reports a pointer to it instead.
        """
        done = self.shared.default_if_done()
        if done is not None:
            self.require_default()
        self.needs_default = True

    def require_default(self) -> TrainingJobResult:
        """The default run; if it failed, fail this check with a pointer instead of another copy of the cause."""
        result = self.default_run()
        completed = result.TrainingJobStatus == "Completed"
        problem = model_verdict(result, list(self.settings.expect_model)) if completed else None
        if result.TrainingJobStatus != "Completed" or problem:
            reason = " ".join(str(problem or result.FailureReason or result.TrainingJobStatus).split())
            self.note.message = f"blocked by SM-RUN-DEFAULT: {reason}"
            self.note.log_tail = ""
            self.note.sections.clear()
            self.note.failed_by_check = True
            pytest.fail(f"{self.check_id}: blocked by SM-RUN-DEFAULT: {reason}; fix that first", pytrace=False)
        return result

    def expect_completed(self, result: TrainingJobResult, shape: str) -> None:
        self.fail_on_engine_fault(result)
        if result.TrainingJobStatus == "Completed":
            self.says(f"{shape}: Completed in {result.timeline.training_seconds or 0:.1f} s")
            return
        self.fail(
            f"{shape}: TrainingJobStatus {result.TrainingJobStatus}, FailureReason: {result.FailureReason}. "
            "SageMaker starts the container this way; the image must train under it "
            "(see the log tail below)",
            result,
        )


@pytest.fixture
def sm_contract(
    request: pytest.FixtureRequest, sm_image: str, training_job: TrainingJobFactory, pytestconfig: pytest.Config
) -> CheckContext:
    """The contract suite's per-check helper (used by the built-in checks only)."""
    item = request.node
    if not isinstance(item, ContractItem):
        pytest.fail("sm_contract is the built-in suite's fixture; use training_job in your own tests", pytrace=False)
    return CheckContext(item, sm_image, training_job, session_of(pytestconfig).platform())
