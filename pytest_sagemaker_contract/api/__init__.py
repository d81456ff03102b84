"""The SageMaker API served over the local platform, for unmodified boto3, AWS CLI and SageMaker SDK code.

No pytest in here (the platform's layer): `sm-contract serve` and the `sagemaker_api` fixture both use it.
"""

from __future__ import annotations

from .errors import ApiError
from .local import LocalPlatform
from .server import SERVICES, ApiServer

__all__ = ["SERVICES", "ApiError", "ApiServer", "LocalPlatform"]
