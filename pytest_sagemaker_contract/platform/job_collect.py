"""Stages 4 and 5 of a training job, collect and verdict: what the hosts left, uploaded; the job's status decided.

Once every host exited: the data path brings model and output back where the engine holds them, each
host's record is read (exit, OOM, failure file, files written), model.tar.gz and output.tar.gz are
packed and uploaded as SageMaker does (contract §4), the job's containers, network and volumes are
removed, and `result.decide_job_status`, the one place that decides a job's status, gives the verdict.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import TrainingJobSpec
from .artifacts import Merged, list_files, modified_inputs, pack_and_upload
from .data_path import remove_tree
from .job_plan import HostRun, JobContext
from .job_run import join_follower
from .result import FINAL_MESSAGES, HostResult, JobStatus, TrainingJobResult, decide_job_status

__all__ = ["collect", "fault_result", "wind_down"]

#: Where the image may write outside /opt/ml/model without it counting (the platform's own and the kernel's).
_NOT_WRITTEN_ELSEWHERE = ("/opt/ml/input", "/opt/ml/model", "/proc", "/sys", "/dev", "/run", "/root/.cache")


def wind_down(ctx: JobContext) -> None:
    """Every host has exited (or never started): feeders, helpers, log followers, watchers and checkpoint
    syncs end, in that order; once per attempt."""
    state = ctx.state
    if state.wound_down:
        return
    state.wound_down = True
    if state.kill_timer is not None:
        state.kill_timer.cancel()
    with state.kill_lock:  # a SIGKILL in flight: let it record which hosts it killed
        pass
    for run in ctx.plan.hosts:
        run.stop_feeders()
    ctx.data.remove_helpers()
    exits = [r.exited_at for r in ctx.plan.hosts if r.exited_at is not None]
    state.timeline.exited = max(exits) if exits else None
    for run in ctx.plan.hosts:
        join_follower(ctx, run)
    if state.interference is not None:
        state.interference.finish(list(ctx.plan.hosts), state.timeline)
    for sync in state.checkpoints:
        with contextlib.suppress(Exception):
            sync.finish()


def collect(ctx: JobContext) -> TrainingJobResult:
    """Stage 4 (collect) and 5 (verdict): the job's DescribeTrainingJob result."""
    ctx.data.after_exit(ctx.state)
    hosts, oom, removals = _host_results(ctx)
    ctx.state.enter("Uploading", "Uploading generated training model")
    artifacts = _upload(ctx)
    _remove_resources(ctx, removals)
    state = ctx.state
    status = decide_job_status(
        hosts,
        client_error=state.client_error,
        first_failure=state.failure[0] if state.failure is not None else None,
        stop_reason=state.stop_reason,
        oom=oom,
    )
    state.enter(status.SecondaryStatus, FINAL_MESSAGES.get(status.SecondaryStatus, status.SecondaryStatus))
    return _result(ctx, status, hosts, artifacts)


def fault_result(ctx: JobContext, exc: BaseException) -> TrainingJobResult:
    """The job's result when collecting it failed for a reason outside the image (its work directory removed by
    another process, the engine gone mid-upload): Failed with an engine fault on every host, never a crashed
    job thread and never blamed on the image."""
    job_dir = ctx.plan.job_dir
    if not job_dir.exists():
        fault = (
            f"the job's work directory {job_dir} was removed from outside the platform while the job ran "
            "(another process cleaning the temporary directory?)"
        )
    else:
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        fault = f"the platform could not collect the job's results ({type(exc).__name__}: {detail})"
    for run in ctx.plan.hosts:
        run.engine_fault = run.engine_fault or fault
    hosts = [_host_record(run) for run in ctx.plan.hosts]
    with contextlib.suppress(Exception):
        _remove_resources(ctx, [_removal(ctx, run) for run in ctx.plan.hosts])
    state = ctx.state
    status = decide_job_status(
        hosts, client_error=state.client_error, first_failure=None, stop_reason=state.stop_reason
    )
    state.enter(status.SecondaryStatus, FINAL_MESSAGES.get(status.SecondaryStatus, status.SecondaryStatus))
    model_uri = _artifact_uris(ctx.plan.spec)[0]
    return _result(ctx, status, hosts, _Artifacts(model_uri, Merged(), Merged(), None))


def _host_results(ctx: JobContext) -> tuple[list[HostResult], bool, list[Future[None] | None]]:
    """Each host's record, whether any was OOM-killed, and the removals of their containers (under way)."""
    platform, state = ctx.platform, ctx.state
    engine = platform.engine
    oom = False
    results: list[HostResult] = []
    removals: list[Future[None] | None] = []
    for run in ctx.plan.hosts:
        if run.container_id is not None and run.start_error is None and state.client_error is None:
            with contextlib.suppress(Exception):
                oom = oom or bool(engine.state(run.container_id).get("OOMKilled"))
        model_files = list_files(run.layout.model)
        elsewhere = _written_elsewhere(ctx, run) if not model_files else []
        removals.append(_removal(ctx, run))
        results.append(
            _host_record(
                run,
                oom_killed=oom,
                failure_text=run.layout.failure_text(),
                model_files=model_files,
                output_files=list_files(run.layout.output_data),
                channels=run.channels,
                written_elsewhere=elsewhere,
            )
        )
    return results, oom, removals


def _host_record(run: HostRun, **found: Any) -> HostResult:
    """The host's record from what the run knows, with `found` (files, OOM) where they could be read."""
    return HostResult(
        host=run.host.name,
        container_id=run.container_id,
        exit_code=run.exit_code,
        killed=run.killed,
        start_error=run.start_error,
        engine_fault=run.engine_fault,
        exited=run.exited_at,
        **found,
    )


def _removal(ctx: JobContext, run: HostRun) -> Future[None] | None:
    """The host's container removal, started on the platform's pool (none with --sm-keep or no container)."""
    platform = ctx.platform
    if run.container_id is None or platform.keep:
        return None
    return platform.pool.submit(platform.engine.remove, run.container_id)


def _written_elsewhere(ctx: JobContext, run: HostRun) -> list[str]:
    """Files the image wrote under /opt/ml (outside input/ and model/) or elsewhere in its filesystem."""
    found = [f"/opt/ml/output/{f}" for f in list_files(run.layout.output) if not f.startswith("data/")]
    if run.layout.checkpoints is not None:
        found += [f"{run.layout.checkpoint_local_path}/{f}" for f in list_files(run.layout.checkpoints)]
    if run.container_id is not None:
        added = ctx.platform.engine.added_files(run.container_id)
        found += [p for p in added if not p.startswith(_NOT_WRITTEN_ELSEWHERE)]
    return sorted(dict.fromkeys(found))[:10]


@dataclass(frozen=True)
class _Artifacts:
    model_uri: str
    model: Merged
    output: Merged
    output_uri: str | None


def _upload(ctx: JobContext) -> _Artifacts:
    """model.tar.gz (always, as SageMaker uploads even an empty one) and output.tar.gz (when there is output)."""
    spec, s3 = ctx.plan.spec, ctx.platform.s3
    hosts = ctx.plan.hosts
    meta = ctx.data.packing_metadata()
    packed = spec.output_compression != "NONE"
    model_uri, output_uri = _artifact_uris(spec)
    model_roots = [r.layout.model for r in hosts]
    model = pack_and_upload(s3, model_roots, model_uri, always=True, metadata=meta, compressed=packed)
    output_roots = [r.layout.output_data for r in hosts]
    output = pack_and_upload(s3, output_roots, output_uri, metadata=meta, compressed=packed)
    return _Artifacts(model_uri, model, output, output_uri if output.files else None)


def _artifact_uris(spec: TrainingJobSpec) -> tuple[str, str]:
    """Where the model and the output go: archives, or with CompressionType NONE the files themselves (§11)."""
    base = f"{spec.output_path}/{spec.name}/output"
    if spec.output_compression == "NONE":
        return f"{base}/model/", f"{base}/data/"
    return f"{base}/model.tar.gz", f"{base}/output.tar.gz"


def _remove_resources(ctx: JobContext, removals: list[Future[None] | None]) -> None:
    """The containers (removals under way), then the job's network and volumes; nothing with --sm-keep."""
    removed = True
    for future in removals:
        if future is None:
            continue
        try:
            future.result()
        except Exception:
            removed = False
    platform, state = ctx.platform, ctx.state
    if platform.keep:
        return
    slot, state.slot = state.slot, None
    if slot is not None:  # handed on only when its job's containers are gone and nothing went wrong around it
        faulted = any(r.engine_fault for r in ctx.plan.hosts) or any(r.container_id is None for r in ctx.plan.hosts)
        if removed and not faulted:
            platform.slots.give_back(slot, platform.leave_network)
        else:
            platform.slots.discard(slot, platform.leave_network)
    for pod in state.pods:  # the hosts' network namespaces: after their containers, before the network
        with contextlib.suppress(Exception):
            platform.engine.remove(pod)
    if state.network_id is not None:
        platform.leave_network(state.network_name)
        platform.engine.remove_network(state.network_id)
    ctx.data.remove_volumes()


def _warnings(ctx: JobContext) -> list[str]:
    state = ctx.state
    engine_faults = [r.engine_fault for r in ctx.plan.hosts if r.engine_fault is not None]
    warnings = [f"engine fault, not the image's: {fault}" for fault in engine_faults]
    warnings.extend(ctx.data.problems)
    warnings.extend(w for sync in state.checkpoints for w in sync.warnings)
    warnings.extend(state.log_warnings)
    for run in ctx.plan.hosts:
        if run.log_error is not None and run.engine_fault is None:
            warnings.append(f"the log stream of {run.host.name} broke off ({run.log_error}); the log may end early")
    if state.fingerprints:
        changed = modified_inputs(state.fingerprints)
        if changed:
            warnings.append(
                f"the container modified {len(changed)} input file(s) in place ({', '.join(changed[:3])}); "
                "your local channel files changed while the job ran (not through the container's channel, which "
                "is a copy-on-write layer): another process wrote them"
            )
    return warnings


def _result(ctx: JobContext, status: JobStatus, hosts: list[HostResult], artifacts: _Artifacts) -> TrainingJobResult:
    platform, plan, state, logs = ctx.platform, ctx.plan, ctx.state, ctx.logs
    warnings = _warnings(ctx)
    logs.close()
    text = logs.text()
    job_dir: Path | None = plan.job_dir if platform.keep else None
    if not platform.keep:
        remove_tree(plan.job_dir)
    timeline = state.timeline
    timeline.finished = time.time()
    result = TrainingJobResult(
        TrainingJobName=plan.spec.name,
        TrainingJobArn=plan.arn,
        TrainingJobStatus=status.TrainingJobStatus,
        SecondaryStatus=status.SecondaryStatus,
        FailureReason=status.FailureReason,
        ModelArtifacts={"S3ModelArtifacts": artifacts.model_uri},
        exit_code=status.exit_code,
        hosts=hosts,
        logs=text,
        timeline=timeline,
        model_files=artifacts.model.files,
        output_files=artifacts.output.files,
        output_data_uri=artifacts.output_uri,
        model_clashes=artifacts.model.clashes,
        not_simulated=plan.spec.not_simulated,
        checkpoints_restored=sorted({f for s in state.checkpoints for f in s.restored}),
        logs_after_sigterm=logs.since(timeline.sigterm_sent) if timeline.sigterm_sent else [],
        warnings=warnings,
        job_dir=job_dir,
        s3=platform.s3,
        log_path=logs.path,
        engine_faults=[r.engine_fault for r in plan.hosts if r.engine_fault is not None],
        model_links=artifacts.model.links,
        SecondaryStatusTransitions=state.transitions.as_list(),
        restarts=list(state.restarts),
    )
    if not platform.keep:
        result.discard_log_with_result()
    return result
