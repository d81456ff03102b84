"""The local SageMaker training platform. No pytest in here: it does not know it is under test."""

from __future__ import annotations

from ..errors import PlatformError
from .engine import Engine, EngineError, ImageUnavailable
from .job import TrainingJob
from .resources import DEFAULT_GRACE_S, PlatformCore
from .result import HostResult, Timeline, TrainingJobResult
from .s3 import S3Server
from .training_platform import TrainingPlatform

__all__ = [
    "DEFAULT_GRACE_S",
    "Engine",
    "EngineError",
    "HostResult",
    "ImageUnavailable",
    "PlatformCore",
    "PlatformError",
    "S3Server",
    "Timeline",
    "TrainingJob",
    "TrainingJobResult",
    "TrainingPlatform",
]
