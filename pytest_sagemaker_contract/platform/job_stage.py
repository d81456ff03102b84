"""Stage 2 of a training job, stage: each host's channels, Pipe feeders and restored checkpoints in place.

Runs while the run stage creates the containers (job_run.py). Channels come from the session's S3 as
SageMaker would download them, or from the user's local paths; what the data path does with a local
channel (an overlay, a direct read into the input archive, a copy) is the job's `DataPath` to say. A
channel that cannot be staged is the client's error: the job fails without starting.
"""

from __future__ import annotations

from dataclasses import replace

from ..spec import ChannelSpec
from .channels import ChannelError, describe_local, source_fingerprint, stage_channel, stage_local
from .checkpoints import CheckpointSync
from .job_plan import HostRun, JobContext
from .layout import channels_for
from .pipes import PipeOptions, pipe_feeder
from .volume import input_disk_error

__all__ = ["restore_checkpoints", "stage_inputs"]


def stage_inputs(ctx: JobContext) -> None:
    """Every host's channels and feeders; a ChannelError becomes the job's client error."""
    try:
        _local_sources(ctx)
        for run in ctx.plan.hosts:
            for channel in channels_for(ctx.plan.spec, run.host):
                _stage_channel(ctx, run, channel)
        spec = ctx.plan.spec
        modes = {c.name: c.input_mode for c in spec.channels if c.file_system is None}  # mounts take no volume room
        hosts = {run.host.name: run.channels for run in ctx.plan.hosts}
        ctx.state.client_error = ctx.state.client_error or input_disk_error(spec.volume_size_gb, hosts, modes)  # §11
    except ChannelError as exc:
        ctx.state.client_error = str(exc)


def _local_sources(ctx: JobContext) -> None:
    """Local channels the containers read in place are watched for outside changes; the rest go to S3 once."""
    plan = ctx.plan
    for name, source in plan.local.items():
        channel = plan.channel(name)
        if channel.file_system is not None:
            continue  # mounted, never uploaded (_stage_file_system)
        if name in plan.local_direct:
            if channel.input_mode == "File" and ctx.data.watches_local_inputs():
                ctx.state.fingerprints.update(source_fingerprint(source))
            continue
        ctx.platform.upload_once(source, channel.s3_uri)


def _stage_file_system(ctx: JobContext, run: HostRun, channel: ChannelSpec) -> None:
    """A FileSystemDataSource channel: the user's local directory stands in for EFS or FSx. The bind path mounts
    it (job_data, layout.file_system_binds); the engine path, which shares no filesystem with this machine, gets
    a copy: in a volume mounted read-only for `ro`, in /opt/ml/input for `rw` (writes then stay in the engine)."""
    fs = channel.file_system
    assert fs is not None
    source = ctx.plan.local.get(channel.name)
    name = channel.name
    if source is None or not source.is_dir():
        seen = "no local directory was given" if source is None else f"{source} is not a directory"
        raise ChannelError(
            f"channel {name!r} reads FileSystemDataSource {fs.describe()}, which the local platform cannot reach, "
            f"and {seen}: give a local directory to mount in its place (--sm-channel {name}=DIR, or "
            f"local_channels={{{name!r}: DIR}})"
        )
    twins = [n for n, p in ctx.plan.local.items() if n != name and p == source]
    if twins:
        raise ChannelError(
            f"channels {name!r} and {twins[0]!r} are both given {source}: a file system channel mounts its directory "
            "at its own path, once per container; give each channel a directory of its own"
        )
    read_only = fs.access_mode == "ro"
    dest = run.layout.channel_dir(name)
    if ctx.data.watches_local_inputs():
        dest.mkdir(parents=True, exist_ok=True)
        run.channels.append(replace(describe_local(channel, source), read_only=read_only))
        return
    run.channels.append(replace(stage_local(channel, source, dest), read_only=read_only))
    if not read_only and run.index == 0:
        ctx.state.log_warnings.append(
            f"channel {name!r} (FileSystemDataSource, rw): this engine shares no filesystem with this machine, so "
            f"the containers write into a copy of {source}, not into it; use a local engine to see the writes"
        )


def _stage_channel(ctx: JobContext, run: HostRun, channel: ChannelSpec) -> None:
    if channel.file_system is not None:
        _stage_file_system(ctx, run, channel)
        return
    plan, platform = ctx.plan, ctx.platform
    receivers = [r for r in plan.hosts if channel in channels_for(plan.spec, r.host)]
    if channel.input_mode == "Pipe":
        run.feeders.append(
            pipe_feeder(
                platform.s3,
                channel,
                run.layout.data,
                host_index=receivers.index(run),
                host_count=len(receivers),
                role_arn=plan.spec.role_arn,
                region=platform.region,
                options=PipeOptions.from_request(plan.spec.request, channel.name),
                engine=ctx.data.pipe_engine(),
            )
        )
        return
    local = plan.local_direct.get(channel.name)
    if local is not None:
        if channel.name in run.overlays:
            run.channels.append(describe_local(channel, local))
        elif ctx.data.reads_directly(channel, local):
            run.direct_sources[channel.name] = local  # read into the archive as it is: no copy
            run.channels.append(describe_local(channel, local))
        elif channel.input_mode == "File" or local.is_file():
            run.channels.append(stage_local(channel, local, run.layout.channel_dir(channel.name)))
        return
    run.channels.append(
        stage_channel(
            platform.s3,
            channel,
            run.layout.channel_dir(channel.name),
            host_index=receivers.index(run),
            host_count=len(receivers),
            role_arn=plan.spec.role_arn,
            region=platform.region,
        )
    )


def restore_checkpoints(ctx: JobContext) -> None:
    """CheckpointConfig: each host's checkpoint directory restored from S3 before the start (contract §3)."""
    checkpoint = ctx.plan.spec.checkpoint
    if checkpoint is None:
        return
    for run in ctx.plan.hosts:
        assert run.layout.checkpoints is not None
        sync = CheckpointSync(
            ctx.platform.s3,
            checkpoint.s3_uri,
            run.layout.checkpoints,
            ctx.platform.checkpoint_sync_s,
            pull=ctx.data.checkpoint_pull(run),
            mounted_at=checkpoint.local_path,
        )
        sync.restore()
        ctx.state.checkpoints.append(sync)
