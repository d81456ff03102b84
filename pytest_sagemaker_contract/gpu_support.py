"""GPUs in the plugin: one host detection per session, and why a GPU test cannot run here.

`gpu_skip_reason` serves both `@pytest.mark.sagemaker_gpu` (through a `pytest_runtest_setup` hook) and
the SM-GPU-VISIBLE check, so both skip for the same, stated reason.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from .platform.engine import docker_info
from .platform.gpu import GpuDetection, GpuPlan, detect, gpu_plan
from .session import SESSION_KEY, session_of

__all__ = ["gpu_skip_reason", "plan_skip_reason", "resolve_instance_type", "session_detection"]

_DETECTION_KEY = pytest.StashKey[GpuDetection]()
_LOCK = threading.Lock()
#: What --sm-instance-type to suggest when the job's type has no GPUs.
SUGGESTED_TYPE = "ml.g5.xlarge"


def session_detection(config: pytest.Config) -> GpuDetection:
    """Detect once per session: the platform's engine when it is up, else a client of its own."""
    with _LOCK:
        cached = config.stash.get(_DETECTION_KEY, None)
        if cached is not None:
            return cached
        session = config.stash.get(SESSION_KEY, None)
        if session is not None and session.started:
            config.stash[_DETECTION_KEY] = session.platform().gpu_detection()
            return config.stash[_DETECTION_KEY]
        info, error = _docker_info(config)
        detection = detect(info)
        if error:
            detection = dataclasses.replace(
                detection, reason=f"cannot read `docker info` ({error}); {detection.reason}"
            )
        config.stash[_DETECTION_KEY] = detection
        return detection


def _docker_info(config: pytest.Config) -> tuple[Mapping[str, Any], str | None]:
    session = config.stash.get(SESSION_KEY, None)
    try:
        if session is not None and session.started:
            info: Mapping[str, Any] = session.platform().engine.info()
            return info, None
        return docker_info(timeout=30), None
    except Exception as exc:
        return {}, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def resolve_instance_type(config: pytest.Config, explicit: str | None = None) -> str:
    """The instance type a job gets: the test's own, --sm-instance-type, the --sm-job request's, else ml.m5.large."""
    return explicit or session_of(config).instance_type()


def plan_skip_reason(plan: GpuPlan, detection: GpuDetection) -> str | None:
    """Why a container under `plan` gets no GPUs (None when it gets some)."""
    if plan.given > 0:
        return None
    if plan.mode == "none":
        return f"--sm-gpus none: no GPUs given to the container (instance type {plan.instance_type})"
    if plan.count == 0:
        return (
            f"instance type {plan.instance_type} has no GPUs; pass --sm-instance-type {SUGGESTED_TYPE} (or another "
            f"GPU type) to give the container GPUs. This host: {detection.reason}"
        )
    return f"{plan.instance_type} has {plan.count} GPU(s), none can be given here: {plan.note or detection.reason}"


def gpu_skip_reason(config: pytest.Config, instance_type: str | None = None, mode: str | None = None) -> str | None:
    """Why a test that needs GPUs cannot have them on this host under this session's options; None if it can.

    `instance_type` is the test's own (e.g. from its `sagemaker_job` marker); `mode` overrides --sm-gpus.
    """
    settings = session_of(config).settings
    plan = gpu_plan(resolve_instance_type(config, instance_type), mode or settings.gpus, session_detection(config))
    return plan_skip_reason(plan, session_detection(config))
