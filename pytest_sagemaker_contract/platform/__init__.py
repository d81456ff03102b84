"""The local SageMaker training platform. No pytest in here: it does not know it is under test."""

from __future__ import annotations

from .engine import Engine, EngineError, ImageUnavailable
from .job import DEFAULT_GRACE_S, Timeline, TrainingJob, TrainingJobResult, TrainingPlatform
from .s3 import S3Server

__all__ = [
    "DEFAULT_GRACE_S",
    "Engine",
    "EngineError",
    "ImageUnavailable",
    "S3Server",
    "Timeline",
    "TrainingJob",
    "TrainingJobResult",
    "TrainingPlatform",
]
