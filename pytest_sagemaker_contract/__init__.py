"""pytest-sagemaker-contract: prove a SageMaker training image obeys the SageMaker training contract.

The pytest plugin (options, the built-in contract suite, fixtures and markers) loads itself through
the `pytest11` entry point. What is importable here is the small public surface for code that drives
the local platform directly.
"""

from __future__ import annotations

from .errors import PlatformError
from .platform import (
    Engine,
    EngineError,
    ImageUnavailable,
    S3Server,
    Timeline,
    TrainingJob,
    TrainingJobResult,
    TrainingPlatform,
)
from .spec import RequestError, TrainingJobSpec, load_request, parse_request

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "EngineError",
    "ImageUnavailable",
    "PlatformError",
    "RequestError",
    "S3Server",
    "Timeline",
    "TrainingJob",
    "TrainingJobResult",
    "TrainingJobSpec",
    "TrainingPlatform",
    "__version__",
    "load_request",
    "parse_request",
]
