"""Paths and helpers shared by the unit and the integration tests (no Docker needed to import them)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
KMEANS = EXAMPLES / "kmeans"
#: The test images (tests/images/<name>/Dockerfile), built by the `example_image` fixture.
IMAGES = REPO / "tests" / "images"
#: The project's copy of a non-local engine (own /tmp, own network, a unix socket); CI starts it too.
REMOTE_TOOL = REPO / ".ci" / "remote-engine"
REMOTE_HOST = "unix:///run/sm-remote-engine/docker.sock"
#: The kmeans example's own request file and training data, as its README passes them.
KMEANS_JOB_ARGS = (f"--sm-job={KMEANS / 'job.json'}", f"--sm-channel=train={KMEANS / 'data'}")
#: The whole suite on kmeans as `examples/demo.py` runs it: the model it saves, a quick SIGTERM, checkpoints.
KMEANS_SUITE_ARGS = (
    *KMEANS_JOB_ARGS,
    "--sm-expect-model=model.json",
    "--sm-stop-after=1.5",
    "--sm-grace=10",
    "--sm-checkpoints",
)


def run_suite(pytester: pytest.Pytester, *args: str, timeout: float = 600) -> pytest.RunResult:
    """`pytest ARGS` in a subprocess, as a user runs it: no cache folder written, no random test order."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=timeout)
