"""pytest-sagemaker-contract: prove a SageMaker training image obeys the SageMaker training contract.

The pytest plugin (options, the built-in contract suite, fixtures and markers) loads itself through
the `pytest11` entry point; using it needs no import.

The stable API is exactly `__all__` below (README "Public API"): the types of what the fixtures hand
you, the request model, the error base class and the suite's warning. Every module of the package
(`plugin`, `session`, `contract`, `platform`, ...) is internal and may change in any release, even
when a name there has no leading underscore.

The names needing pytest (`TrainingJobFactory`, `JobRequest`, `SageMakerContractWarning`) are loaded
on first use, so that `import pytest_sagemaker_contract` and its platform work without pytest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import PlatformError
from .jobs import JobOverrides
from .platform import TrainingJob, TrainingJobResult, TrainingPlatform
from .spec import RequestError, TrainingJobSpec, load_request, parse_request

if TYPE_CHECKING:
    from .contract.suite import SageMakerContractWarning
    from .fixtures import JobRequest, TrainingJobFactory
    from .platform import Engine as Engine
    from .platform import EngineError as EngineError
    from .platform import ImageUnavailable as ImageUnavailable
    from .platform import S3Server as S3Server
    from .platform import Timeline as Timeline

__version__ = "0.1.0"

__all__ = [
    "JobOverrides",
    "JobRequest",
    "PlatformError",
    "RequestError",
    "SageMakerContractWarning",
    "TrainingJob",
    "TrainingJobFactory",
    "TrainingJobResult",
    "TrainingJobSpec",
    "TrainingPlatform",
    "__version__",
    "load_request",
    "parse_request",
]

#: Stable names that live in modules importing pytest: loaded when first asked for.
_LAZY = {
    "JobRequest": "fixtures",
    "TrainingJobFactory": "fixtures",
    "SageMakerContractWarning": "contract.suite",
}
#: Exported before the API was trimmed; still importable here, but internal: import them from
#: `pytest_sagemaker_contract.platform` (no stability promise).
_FORMER = {name: "platform" for name in ("Engine", "EngineError", "ImageUnavailable", "S3Server", "Timeline")}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name) or _FORMER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
