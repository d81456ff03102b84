"""pytest-sagemaker-contract: prove a SageMaker training image obeys the SageMaker training contract."""

from __future__ import annotations

__version__ = "0.1.0"
