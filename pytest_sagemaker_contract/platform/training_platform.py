"""The local SageMaker training platform: CreateTrainingJob over the session's shared resources."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..spec import TrainingJobSpec
from .job import TrainingJob
from .owner import claim
from .resources import PlatformCore
from .result import TrainingJobResult

__all__ = ["TrainingPlatform"]


class TrainingPlatform(PlatformCore):
    """The local SageMaker training platform: an engine, an S3, a work directory, one run id."""

    def start(
        self, spec: TrainingJobSpec, local_channels: Mapping[str, Path] | None = None, gpus: str | None = None
    ) -> TrainingJob:
        """CreateTrainingJob: returns once every host's container has started (or failed to).

        `local_channels` maps channel names to local files or directories that stand in for the channel's
        S3 data: staged without a copy where the channel's semantics allow (FullyReplicated S3Prefix in
        File or FastFile mode), else uploaded to the channel's S3 URI first, so the S3 path is exercised.
        `gpus` (auto|all|none|devices) overrides the platform's GPU mode for this job.
        """
        if not self.keep:  # a keeper removed from outside is restarted before this job's resources exist
            claim(self.engine)
        job = TrainingJob.launch(self, spec, local_channels, gpus)
        self.live_jobs.add(job)
        return job

    def run(
        self, spec: TrainingJobSpec, timeout: float | None = None, local_channels: Mapping[str, Path] | None = None
    ) -> TrainingJobResult:
        return self.start(spec, local_channels).wait(timeout)
