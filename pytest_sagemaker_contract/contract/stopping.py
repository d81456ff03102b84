"""§5 Stopping: SIGTERM with the grace period, MaxRuntimeInSeconds, and checkpoints across a restart.

StopTrainingJob and MaxRuntimeInSeconds both behave like `docker stop -t 120`: SIGTERM to PID 1, SIGKILL
120 s later, status Stopped, and /opt/ml/model is still uploaded — saving the model in the SIGTERM
handler is how intermediate artifacts survive.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import NoReturn

from ..diagnosis import SigtermEffect, diagnose_kill, process_tree_text, signals_text, sigterm_effect
from ..jobs import JobOverrides, session_uri
from ..platform import TrainingJob, TrainingJobResult
from .invocation import expected_model
from .model import model_problem, written_elsewhere
from .suite import CheckContext, check

#: Hyperparameter names that usually set how long training runs, most telling first.
_LENGTH_KEYS = (
    "epochs",
    "num_epochs",
    "n_epochs",
    "epoch",
    "steps",
    "max_steps",
    "num_steps",
    "iterations",
    "max_iter",
    "num_round",
    "num_rounds",
    "n_estimators",
    "seconds",
)


def _longer(sm_contract: CheckContext) -> str:
    """How to make the SIGTERM runs outlast the trigger, naming a hyperparameter the job really has."""
    settings = sm_contract.settings
    request = settings.job_request or {}
    known = {**(request.get("HyperParameters") or {}), **settings.hyperparameters, **settings.sigterm_hyperparameters}
    key = next((k for k in _LENGTH_KEYS if k in known), None)
    if key is not None:
        value = known[key]
        bigger = str(int(value) * 20) if value.isdigit() and int(value) > 0 else "<larger>"
        how = f"--sm-sigterm-hyperparameter {key}={bigger} (used only for the SIGTERM runs)"
    else:
        how = (
            "--sm-sigterm-hyperparameter NAME=VALUE with the hyperparameter of your trainer that makes it run longer "
            "(used only for the SIGTERM runs), or a larger --sm-channel"
        )
    return f"make the SIGTERM run train longer, e.g. {how}, or trigger earlier with --sm-stop-after / --sm-stop-on-log"


def _trigger(sm_contract: CheckContext, job: TrainingJob) -> str | None:
    """Wait for the SIGTERM trigger; a description of it, or None when the job ended first."""
    settings = sm_contract.settings
    if settings.stop_on_log:
        match = job.wait_for_log(settings.stop_on_log, timeout=settings.timeout_s)
        if match is None:
            if job.ended(0):
                return None
            sm_contract.fail(
                f"no log line matched --sm-stop-on-log {settings.stop_on_log!r} within {settings.timeout_s:g} s; "
                "check the pattern against the log"
            )
        return f"log line {match.group(0)!r}"
    started = job.timeline.started or time.time()
    if job.ended(max(0.0, started + settings.stop_after_s - time.time())):
        return None
    return f"{settings.stop_after_s:g} s after start"


def _ended_early(sm_contract: CheckContext, result: TrainingJobResult, what: str) -> NoReturn:
    sm_contract.fail_on_engine_fault(result)
    if result.TrainingJobStatus == "Failed":
        sm_contract.fail(
            f"the job Failed before {what}: {result.FailureReason}; it must train before it can be stopped",
            result,
        )
    took = result.timeline.training_seconds or 0.0
    sm_contract.skip(f"training finished in {took:.1f} s, before {what}: {_longer(sm_contract)}")


def _failed_first(sm_contract: CheckContext, result: TrainingJobResult, what: str) -> None:
    """A job that Failed around the stop: its own failure is the cause to report, not a missing model."""
    if result.TrainingJobStatus == "Failed":
        sm_contract.fail(
            f"{what}: the job Failed (exit code {result.exit_code}): {result.FailureReason}; it must train until it "
            "is stopped before its SIGTERM handling can be judged",
            result,
        )


def _exit_text(result: TrainingJobResult) -> str:
    code = result.exit_code
    if code in (0, None):
        return "exit code 0"
    text = f"exit code {code}"
    failure = next((h.failure_text for h in result.hosts if h.failure_text), None)
    if code not in (128 + 15, 137) and failure:
        text += f", failure file: {' '.join(failure.split())[:200]!r}"
    return text


def _stopped_verdict(sm_contract: CheckContext, result: TrainingJobResult, grace: float, what: str) -> str:
    """Fail with a diagnosis unless SIGTERM itself ended the run within the grace with the model saved; else the
    summary.

    A pass needs evidence that the signal acted (a process caught it or died of it), read from the container's
    signal dispositions at SIGTERM: a run that merely finished training inside the grace would be SIGKILLed
    on SageMaker as soon as its training outlasts the grace. Never a pass when the container was removed or
    SIGKILLed from outside during the grace: its exit then says nothing about the image's SIGTERM handling.
    """
    sm_contract.fail_on_engine_fault(result)
    _failed_first(sm_contract, result, what)
    tl = result.timeline
    sm_contract.note.sections.append(("process tree at SIGTERM", process_tree_text(tl.process_tree)))
    sm_contract.note.sections.append(
        ("SIGTERM dispositions at SIGTERM (pid ppid disposition command)", signals_text(tl.signals_at_sigterm))
    )
    if result.logs_after_sigterm:
        sm_contract.note.sections.append(("log after SIGTERM", "\n".join(result.logs_after_sigterm[-20:])))
    if result.killed:
        cause = diagnose_kill(
            tree=tl.process_tree,
            pid1_sigterm=tl.pid1_sigterm,
            logs_after_sigterm=result.logs_after_sigterm,
            grace_s=grace,
            tree_at_kill=tl.process_tree_at_kill,
        )
        sm_contract.fail(
            f"{what}: still running {grace:g} s after SIGTERM, killed with SIGKILL (exit code "
            f"{result.exit_code}); artifacts written after that are lost. {cause}",
            result,
        )
    seconds = tl.seconds_to_exit_after_sigterm or 0.0
    effect = sigterm_effect(tl.signals_at_sigterm)
    if effect.acts is not True and result.exit_code == 128 + 15:
        effect = SigtermEffect(True, "the container exited with code 143 (128 + SIGTERM): the signal ended it")
    if effect.acts is False:
        sm_contract.fail(
            f"{what}: SIGTERM had no effect: {effect.evidence}. The run ended on its own {seconds:.1f} s later "
            f"({_exit_text(result)}); on a run longer than the grace ({grace:g} s) SageMaker SIGKILLs it and what "
            f"it writes after SIGTERM is lost. Fix: {effect.fix}",
            result,
        )
    if effect.acts is None:
        sm_contract.skip(
            f"{what}: SIGTERM not judged: {effect.evidence}, so nothing shows that the signal (rather than the "
            f"training's natural end) ended the run {seconds:.1f} s later; run on a local engine, or give the "
            "image /bin/sh or cat"
        )
    problem = model_problem(result.model_files, expected_model(sm_contract))
    if problem:
        elsewhere = written_elsewhere(result)
        sm_contract.fail(
            f"{what}: the container exited {seconds:.1f} s after SIGTERM ({_exit_text(result)}), but {problem}"
            f"{elsewhere}. Save the model to /opt/ml/model in the SIGTERM handler before exiting: SageMaker uploads "
            "what is there",
            result,
        )
    code = result.exit_code
    exit_note = f", exit code {code} (SageMaker still reports Stopped)" if code not in (0, None) else ", exit code 0"
    shown = ", ".join(result.model_files[:3])
    return (
        f"exited {seconds:.1f} s after SIGTERM (grace {grace:g} s){exit_note}; {effect.evidence}; model saved: {shown}"
    )


@check(
    "SM-SIG-TERM",
    "§5 StopTrainingJob: SIGTERM, SIGKILL after the grace, model still uploaded",
    "on SIGTERM the image saves its model and exits within the grace period",
)
def sm_sig_term(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    grace = settings.grace_s
    job = sm_contract.start(hyperparameters=settings.sigterm_hyperparameters)
    with job:
        trigger = _trigger(sm_contract, job)
        if trigger is None:
            _ended_early(sm_contract, job.wait(), "the SIGTERM trigger")
        job.stop(grace=grace)
        result = job.wait(grace + 120)
    summary = _stopped_verdict(sm_contract, result, grace, f"SIGTERM at {trigger}")
    sm_contract.says(summary)


@check(
    "SM-SIG-MAX-RUNTIME",
    "§5 MaxRuntimeInSeconds: SIGTERM + grace, Stopped / MaxRuntimeExceeded, model uploaded",
    "when MaxRuntimeInSeconds expires the job ends Stopped/MaxRuntimeExceeded with its model saved",
)
def sm_sig_max_runtime(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    runtime = max(1, math.ceil(settings.stop_after_s))
    result = sm_contract.run(
        hyperparameters=settings.sigterm_hyperparameters,
        max_runtime=runtime,
        timeout=runtime + settings.grace_s + 120,
    )
    if result.timeline.sigterm_sent is None:
        _ended_early(sm_contract, result, f"MaxRuntimeInSeconds={runtime}")
    if (result.TrainingJobStatus, result.SecondaryStatus) != ("Stopped", "MaxRuntimeExceeded"):
        sm_contract.fail(
            f"expected Stopped/MaxRuntimeExceeded, got {result.TrainingJobStatus}/{result.SecondaryStatus}", result
        )
    summary = _stopped_verdict(sm_contract, result, settings.grace_s, f"MaxRuntimeInSeconds={runtime}")
    sm_contract.says(f"Stopped/MaxRuntimeExceeded: {summary}")


@check(
    "SM-CKPT-RESUME",
    "§3/§5 checkpoints: restored from S3 at start, synced during training; a restarted job resumes",
    "a stopped job's checkpoints are restored into the next job with the same URI, which then completes",
)
def sm_ckpt_resume(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    request = settings.job_request or {}
    config = request.get("CheckpointConfig") or {}
    if not config and not settings.checkpoints:
        sm_contract.skip(
            "the job has no CheckpointConfig; pass --sm-checkpoints to test checkpoint/resume anyway", structural=True
        )
    base = str(config.get("S3Uri") or session_uri(sm_contract.platform.run_id, "checkpoints")).rstrip("/")
    uri = f"{base}/sm-contract-{uuid.uuid4().hex[:8]}"
    local = config.get("LocalPath")
    checkpoint: JobOverrides = {"checkpoint_s3_uri": uri}
    interrupted: JobOverrides = {"checkpoint_s3_uri": uri, "hyperparameters": settings.sigterm_hyperparameters}
    if local is not None:
        checkpoint["checkpoint_local_path"] = interrupted["checkpoint_local_path"] = str(local)
    first = sm_contract.start(**interrupted)
    with first:
        trigger = _trigger(sm_contract, first)
        if trigger is None:
            _ended_early(sm_contract, first.wait(), "the SIGTERM trigger")
        first.stop(grace=settings.grace_s)
        stopped = first.wait(settings.grace_s + 120)
    sm_contract.fail_on_engine_fault(stopped)
    _failed_first(sm_contract, stopped, f"the first run (SIGTERM at {trigger})")
    effect = sigterm_effect(stopped.timeline.signals_at_sigterm)
    if effect.acts is False and not stopped.killed:
        sm_contract.skip(
            f"the first run was never interrupted: SIGTERM at {trigger} had no effect ({effect.evidence}) and its "
            f"training ran to its natural end, so resuming from its checkpoints proves nothing (see SM-SIG-TERM)"
        )
    saved = [o.key for o in sm_contract.platform.s3.objects(uri + "/")]
    if not saved:
        sm_contract.fail(
            f"the first run (SIGTERM at {trigger}) left no checkpoints: write them to "
            f"{local or '/opt/ml/checkpoints'} during training; the platform syncs that directory to {uri}",
            stopped,
        )
    resumed = sm_contract.run(**checkpoint)
    if not resumed.checkpoints_restored:
        sm_contract.fail(f"the second run got no checkpoints restored from {uri}", resumed)
    if resumed.TrainingJobStatus != "Completed":
        sm_contract.fail(
            f"the resumed run (with {len(resumed.checkpoints_restored)} checkpoint file(s) restored) ended "
            f"{resumed.TrainingJobStatus}: {resumed.FailureReason}",
            resumed,
        )
    if settings.resume_log and not re.search(settings.resume_log, resumed.logs, re.MULTILINE):
        sm_contract.fail(
            f"the resumed run Completed but its log never matched --sm-resume-log {settings.resume_log!r}: "
            "it probably started from scratch instead of from the restored checkpoints",
            resumed,
        )
    sm_contract.says(
        f"{len(saved)} checkpoint file(s) synced before the stop, {len(resumed.checkpoints_restored)} restored; "
        "the resumed run Completed"
    )
