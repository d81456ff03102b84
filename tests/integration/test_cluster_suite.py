"""SM-HOSTS-MULTI, SM-NET-ISOLATION and SM-DATA-MODES through pytest, on real containers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ..helpers import KMEANS_JOB_ARGS
from .conftest_helpers import IMAGES, KMEANS, run_checks


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


def test_multi_host_passes_and_single_host_job_skips(pytester: pytest.Pytester, probe: str, no_leftovers: str) -> None:
    result, checks = run_checks(pytester, probe, "-k", "SM-HOSTS-MULTI", "--sm-instance-count=3")
    result.assert_outcomes(passed=1)
    assert checks["SM-HOSTS-MULTI"][1] == "Completed on 3 hosts; model files: algo-1.txt, algo-2.txt, algo-3.txt"
    result, checks = run_checks(pytester, probe, "-k", "SM-HOSTS-MULTI")
    result.assert_outcomes(skipped=1)
    assert "--sm-instance-count 2" in checks["SM-HOSTS-MULTI"][1]


def test_multi_host_model_clash_fails(pytester: pytest.Pytester, probe: str) -> None:
    result, checks = run_checks(pytester, probe, "-k", "SM-HOSTS-MULTI", "--sm-instance-count=2", "--sm-env=CLASH=1")
    result.assert_outcomes(failed=1)
    assert "different files under the same model names (model.txt)" in checks["SM-HOSTS-MULTI"][1]
    assert "current_host == hosts[0]" in checks["SM-HOSTS-MULTI"][1]


def test_isolation_passes_for_a_self_contained_image(pytester: pytest.Pytester, probe: str) -> None:
    result, _checks = run_checks(pytester, probe, "-k", "SM-NET-ISOLATION")
    result.assert_outcomes(passed=1)


def test_isolation_fails_for_an_image_that_needs_s3_and_allow_network_skips(
    pytester: pytest.Pytester, probe: str
) -> None:
    result, checks = run_checks(pytester, probe, "-k", "SM-NET-ISOLATION", "--sm-env=NEED_S3=1")
    result.assert_outcomes(failed=1)
    message = checks["SM-NET-ISOLATION"][1]
    assert (
        "FailureReason: AlgorithmError: cannot download the pretrained weights: no S3 endpoint, exit code: 3" in message
    )
    assert "--sm-allow-network" in message
    result, checks = run_checks(pytester, probe, "-k", "SM-NET-ISOLATION", "--sm-env=NEED_S3=1", "--sm-allow-network")
    result.assert_outcomes(skipped=1)


def test_data_modes_file_and_fastfile_on_kmeans(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("kmeans")
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-DATA-MODES",
        *KMEANS_JOB_ARGS,
        "--sm-input-modes=File,FastFile",
        "--sm-hyperparameter=seconds_per_epoch=0",
    )
    result.assert_outcomes(passed=1)
    assert checks["SM-DATA-MODES"][1].startswith("Completed under File ")
    assert ", FastFile " in checks["SM-DATA-MODES"][1]


def test_data_modes_fastfile_write_fails_with_the_hint(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image(IMAGES / "writes-into-channel")
    result, checks = run_checks(
        pytester,
        image,
        "-k",
        "SM-DATA-MODES",
        f"--sm-channel=train={KMEANS / 'data'}",
        "--sm-input-modes=File,FastFile",
    )
    result.assert_outcomes(failed=1)
    assert checks["SM-DATA-MODES"][1].startswith("FastFile mode: Failed")
    assert "FastFile channels are read-only" in checks["SM-DATA-MODES"][1]
