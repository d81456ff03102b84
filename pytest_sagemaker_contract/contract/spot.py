"""§11 Managed spot training: an interruption restarts the same job, which must resume from its checkpoints.

When SageMaker reclaims a spot instance, the job's container gets SIGTERM, what it wrote to the checkpoint
directory is synced to S3, and the same job restarts on a fresh instance: input and checkpoints are
downloaded again and /opt/ml/model starts empty. An image passes when its restarted run resumes from the
restored checkpoints and completes with its model; one that starts over trains twice (and pays twice).
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any, NoReturn

from ..jobs import DEFAULT_MAX_RUNTIME, JobOverrides, default_request, session_uri
from ..platform import TrainingJobResult
from ..platform.result import Restart
from .invocation import expected_model
from .model import model_problem
from .stopping import _ended_early, _trigger
from .suite import CheckContext, check

#: What the restarted run must do, for the failure messages.
_RESUME_FIX = (
    "on start, load the newest checkpoint from {local} when there is one and continue from it (SageMaker "
    "restores the checkpoint S3 URI there when it restarts an interrupted job)"
)


def _spot_request(sm_contract: CheckContext) -> dict[str, Any]:
    """The session's request as a managed spot job, MaxWaitTimeInSeconds at least MaxRuntimeInSeconds."""
    request = copy.deepcopy(dict(sm_contract.settings.job_request or default_request("sm-contract")))
    request["EnableManagedSpotTraining"] = True
    stopping = request.setdefault("StoppingCondition", {})
    runtime = int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME))
    stopping["MaxWaitTimeInSeconds"] = max(int(stopping.get("MaxWaitTimeInSeconds") or 0), runtime)
    return request


def _resume_evidence(sm_contract: CheckContext, result: TrainingJobResult, restart: Restart, local: str) -> str:
    """Positive evidence that the restarted run resumed from the restored checkpoints, else fail or skip."""
    settings = sm_contract.settings
    restored = ", ".join(restart.restored[:3])
    if settings.resume_log:
        if re.search(settings.resume_log, result.logs, re.MULTILINE):
            return f"its log matched --sm-resume-log {settings.resume_log!r}"
        sm_contract.fail(
            f"the restarted run Completed but its log never matched --sm-resume-log {settings.resume_log!r}: it "
            f"probably started over instead of resuming from the {len(restart.restored)} restored checkpoint "
            f"file(s) ({restored}). Fix: {_RESUME_FIX.format(local=local)}",
            result,
        )
    if restart.read:
        return f"it read {len(restart.read)} of them ({', '.join(restart.read[:3])})"
    if restart.read is not None:
        sm_contract.fail(
            f"the restarted run never read the {len(restart.restored)} checkpoint file(s) restored into {local} "
            f"({restored}): it started over instead of resuming, so every interruption repeats the training "
            f"done so far. Fix: {_RESUME_FIX.format(local=local)}",
            result,
        )
    sm_contract.skip(
        f"the restarted run Completed with {len(restart.restored)} checkpoint file(s) restored, but the platform "
        "cannot see their access times here (the engine data path keeps them in volumes, or the filesystem is "
        "mounted noatime), so nothing shows the run resumed from them: pass --sm-resume-log REGEX matching the "
        "line your image prints when it resumes"
    )


def _restart_verdict(sm_contract: CheckContext, result: TrainingJobResult, trigger: str, local: str) -> str:
    """Fail unless the job restarted, got its checkpoints back, resumed and completed with its model; else the
    summary."""
    sm_contract.fail_on_engine_fault(result)
    restart = next((r for r in result.restarts if r.cause == "Interrupted"), None)
    if restart is None:
        _ended_early(sm_contract, result, f"the interruption ({trigger})")
    if not restart.checkpoints_saved:
        sm_contract.fail(
            f"the run interrupted at {trigger} left no checkpoints: the restarted job had nothing to resume from "
            f"and started over. Write checkpoints to {local} during training; SageMaker syncs that directory to "
            "CheckpointConfig.S3Uri while the job runs and restores it after an interruption",
            result,
        )
    if not restart.restored:
        sm_contract.fail(
            f"{len(restart.checkpoints_saved)} checkpoint file(s) were synced before the interruption, but none "
            f"could be restored into the restarted run (see the warnings): {result.warnings[:2]}",
            result,
        )
    if result.TrainingJobStatus != "Completed":
        sm_contract.fail(
            f"the restarted run ({len(restart.restored)} checkpoint file(s) restored) ended "
            f"{result.TrainingJobStatus}/{result.SecondaryStatus}: {result.FailureReason}",
            result,
        )
    problem = model_problem(result.model_files, expected_model(sm_contract))
    if problem:
        sm_contract.fail(
            f"the restarted run Completed, but {problem}. /opt/ml/model starts empty in the restarted containers: "
            "the run that completes must write the whole model, also when it resumed from a checkpoint",
            result,
        )
    evidence = _resume_evidence(sm_contract, result, restart, local)
    path = " → ".join(t["Status"] for t in result.SecondaryStatusTransitions)
    shown = ", ".join(result.model_files[:3])
    return (
        f"interrupted at {trigger}, restarted in the same job ({path}); {len(restart.checkpoints_saved)} checkpoint "
        f"file(s) synced, {len(restart.restored)} restored, {evidence}; model saved: {shown}"
    )


@check(
    "SM-SPOT-RESTART",
    "§11 managed spot: an interruption restarts the same job, checkpoints restored, /opt/ml/model empty",
    "an interrupted spot job restarts, resumes from its restored checkpoints and completes with its model",
)
def sm_spot_restart(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    config = (settings.job_request or {}).get("CheckpointConfig") or {}
    if not config and not settings.checkpoints:
        sm_contract.skip(
            "the job has no CheckpointConfig, so a spot interruption restarts it from scratch; pass --sm-checkpoints "
            "to test interruption and resume anyway",
            structural=True,
        )
    base = str(config.get("S3Uri") or session_uri(sm_contract.platform.run_id, "checkpoints")).rstrip("/")
    overrides: JobOverrides = {
        "job": _spot_request(sm_contract),
        "checkpoint_s3_uri": f"{base}/sm-contract-{uuid.uuid4().hex[:8]}",
        "hyperparameters": settings.sigterm_hyperparameters,
    }
    local = str(config.get("LocalPath") or "/opt/ml/checkpoints")
    if config.get("LocalPath"):
        overrides["checkpoint_local_path"] = local
    job = sm_contract.start(**overrides)
    with job:
        trigger = _trigger(sm_contract, job)
        if trigger is None or not job.interrupt(grace=settings.grace_s):
            _ended_early(sm_contract, job.wait(), "the interruption trigger")
        limit = settings.timeout_s + settings.grace_s
        if not job.ended(limit):
            job.stop(grace=settings.grace_s)
            _too_long(sm_contract, job.wait(settings.grace_s + 120), trigger, limit)
        result = job.wait()
    sm_contract.note.sections.append(("SecondaryStatusTransitions", _transitions_text(result)))
    sm_contract.says(_restart_verdict(sm_contract, result, trigger, local))


def _too_long(sm_contract: CheckContext, result: TrainingJobResult, trigger: str, limit: float) -> NoReturn:
    settings = sm_contract.settings
    kept = ", ".join(f"{k}={v}" for k, v in settings.sigterm_hyperparameters.items())
    sm_contract.fail(
        f"the job interrupted at {trigger} had not completed {limit:g} s later (--sm-timeout plus the grace) and "
        "was stopped: either the restarted run hangs, or it trains longer than that"
        + (f" (as the same job it keeps the SIGTERM runs' hyperparameters {kept})" if kept else "")
        + "; raise --sm-timeout, or make the SIGTERM runs shorter",
        result,
    )


def _transitions_text(result: TrainingJobResult) -> str:
    """One line per transition: seconds since the first, status, message."""
    transitions = result.SecondaryStatusTransitions
    start = transitions[0]["StartTime"] if transitions else 0.0
    return "\n".join(f"{t['StartTime'] - start:7.1f} s  {t['Status']:<20} {t['StatusMessage']}" for t in transitions)
