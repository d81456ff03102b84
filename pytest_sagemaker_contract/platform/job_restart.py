"""A restart within the same training job: a managed spot interruption or a RetryStrategy retry (contract §11).

When an attempt's hosts have all exited (job_run.Supervisor) and wound down (job_collect.wind_down: the
checkpoints synced up a last time), `restart_due` says whether the job restarts (spot.restart_cause). A
restart records why (a `Restart` in the result), releases the attempt's containers and their credentials
pods, and gives every host a fresh /opt/ml: `model/` and `output/` empty, input staged and checkpoints
restored again into new containers by the same stages as the first attempt (job.py). MaxWaitTimeInSeconds
is checked here too: a spot job with no wait left ends Stopped/MaxWaitTimeExceeded instead.
"""

from __future__ import annotations

import contextlib
import time

from .data_path import remove_tree
from .job_plan import HostRun, JobContext
from .result import Restart, Timeline
from .s3 import parse_s3_uri
from .spot import RETRIED, ReadWitness, restart_cause

__all__ = ["arm_witness", "begin_restart", "note_reads", "restart_due"]


def restart_due(ctx: JobContext) -> str | None:
    """Why the job restarts now that its attempt is over (Interrupted, InternalServerError), or None."""
    state, spec = ctx.state, ctx.plan.spec
    if state.client_error is not None:
        return None
    return restart_cause(
        interrupted=state.interrupting,
        engine_fault=next((r.engine_fault for r in ctx.plan.hosts if r.engine_fault), None),
        stop_reason=state.stop_reason,
        managed_spot=spec.managed_spot,
        retries_used=state.retries_used,
        max_retries=spec.max_retry_attempts,
    )


def begin_restart(ctx: JobContext, cause: str) -> bool:
    """Record the ended attempt and make every host ready for the next one; False when MaxWaitTimeInSeconds
    leaves no time for it (the job then ends Stopped/MaxWaitTimeExceeded)."""
    state, spec = ctx.state, ctx.plan.spec
    if spec.max_wait_s is not None and time.time() >= state.created_at + spec.max_wait_s:
        state.stop_reason = "MaxWaitTimeExceeded"
        return False
    _record(ctx, cause)
    _release(ctx)
    _reset(ctx)
    state.enter("Starting", "Preparing the instances for training (restart)")
    return True


def _record(ctx: JobContext, cause: str) -> None:
    state, spec = ctx.state, ctx.plan.spec
    fault = next((r.engine_fault for r in ctx.plan.hosts if r.engine_fault), None)
    if cause == RETRIED:
        state.retries_used += 1
        reason = f"an InternalServerError: {fault}"
        state.log_warnings.append(
            f"attempt {state.attempt} ended with an InternalServerError ({fault}); RetryStrategy restarted the job "
            f"(retry {state.retries_used} of {spec.max_retry_attempts})"
        )
    else:
        reason = "a managed spot interruption: SIGTERM, then SIGKILL to what still ran after the grace"
        if fault is not None:
            state.log_warnings.append(f"engine fault during attempt {state.attempt}'s interruption: {fault}")
    timeline = state.timeline
    state.trained_s += timeline.training_seconds or 0.0
    state.restarts.append(
        Restart(
            attempt=state.attempt,
            cause=cause,
            reason=reason,
            at=timeline.exited or time.time(),
            checkpoints_saved=_checkpoint_names(ctx),
            timeline=timeline,
        )
    )


def _checkpoint_names(ctx: JobContext) -> list[str]:
    """What the CheckpointConfig S3 URI holds now, by name below it."""
    checkpoint = ctx.plan.spec.checkpoint
    if checkpoint is None:
        return []
    uri = checkpoint.s3_uri.rstrip("/")
    _bucket, prefix = parse_s3_uri(uri)
    with contextlib.suppress(Exception):
        return sorted(o.key[len(prefix) + 1 :] if prefix else o.key for o in ctx.platform.s3.objects(uri + "/"))
    return []


def _release(ctx: JobContext) -> None:
    """The ended attempt's containers go (kept, stopped, with --sm-keep); so do their credentials pods, whose
    algo-N aliases the next attempt's pods take over."""
    platform, state = ctx.platform, ctx.state
    engine = platform.engine
    if not platform.keep:
        ids = [r.container_id for r in ctx.plan.hosts if r.container_id is not None]
        for future in [platform.pool.submit(engine.remove, cid) for cid in ids]:
            with contextlib.suppress(Exception):
                future.result()
    for pod in state.pods:
        with contextlib.suppress(Exception):
            if platform.keep:
                engine.kill(pod, "SIGKILL")
            else:
                engine.remove(pod)
    state.pods.clear()


def _reset(ctx: JobContext) -> None:
    """A fresh start for every host and for the job's per-attempt state; what the job learned stays."""
    plan, state = ctx.plan, ctx.state
    state.attempt += 1
    for run in plan.hosts:
        _fresh_host(run, state.attempt)
        remove_tree(run.layout.root)
        remove_tree(plan.job_dir / f"{run.host.name}.overlay")
        run.layout.create()
        run.layout.write_config(plan.spec, run.host)
    state.failure = None
    state.kill_due = None
    state.kill_timer = None
    state.checkpoints = []
    state.interference = None
    state.interrupting = False
    state.wound_down = False
    state.timeline = Timeline(created=state.timeline.created)


def _fresh_host(run: HostRun, attempt: int) -> None:
    """The host's record for a new container: nothing of the last one is left but its name's stem."""
    run.name = f"{run.name.split('_')[0]}_attempt{attempt}"
    run.container_id = run.start_error = run.engine_fault = run.log_error = run.helper_id = None
    run.exit_code = run.exited_at = None
    run.killed = run.sigkill_sent = False
    run.channels, run.feeders = [], []
    run.fast_volumes, run.overlays, run.direct_sources = {}, {}, {}
    run.log_thread = None


def arm_witness(ctx: JobContext) -> None:
    """A restarted attempt's checkpoints are restored: note them on its restart and watch which it reads (where
    the hosts' checkpoint directories are on this machine)."""
    state = ctx.state
    if not state.restarts or state.attempt == 1:
        return
    state.restarts[-1].restored = sorted({f for sync in state.checkpoints for f in sync.restored})
    files = {}
    for run in ctx.plan.hosts:
        local = run.layout.checkpoints
        if local is None or ctx.data.checkpoint_pull(run) is not None:
            return  # the engine holds the directory: no access times to read here
        for sync in state.checkpoints:
            if sync.local == local:
                files.update({f"{run.host.name}/{name}": local / name for name in sync.restored})
    if files:
        state.witness = ReadWitness.arm(files, ctx.plan.job_dir)


def note_reads(ctx: JobContext) -> None:
    """The attempt is over: which restored checkpoints it read (by name, on any host), on its restart."""
    state = ctx.state
    if state.witness is None or not state.restarts:
        return
    read = state.witness.read()
    state.restarts[-1].read = None if read is None else sorted({name.split("/", 1)[1] for name in read})
    state.witness = None
