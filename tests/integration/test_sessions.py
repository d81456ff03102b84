"""Two pytest sessions in one process share nothing: per-session state lives in `config.stash`.

`pytest.main` twice or `pytester.runpytest_inprocess` run a second session in the same interpreter. The
second must inspect the image again (the tag may now name another image) and run its own default run: the
first session's result points at an S3 server that stopped with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.session import session_of

from .conftest_helpers import IMAGES, outcomes_by_check

#: The image's static facts (SM-IMG-EXEC-FORM), its default run, and a check that reads that run's S3.
CHECKS = "SM-IMG-EXEC-FORM or SM-RUN-DEFAULT or SM-OUT-MODEL"


@pytest.fixture
def shared_tag(docker_client: docker.DockerClient, no_leftovers: str) -> Iterator[str]:
    tag = f"sm-contract-test/two-sessions:{no_leftovers}"
    yield tag
    docker_client.images.remove(tag, noprune=True)


def run_session(pytester: pytest.Pytester, tag: str, report: Path) -> dict[str, tuple[str, str]]:
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--sm-image={tag}", "--sm-env=EPOCHS=1", f"--sm-report={report}", "-k", CHECKS
    )
    checks = outcomes_by_check(json.loads(report.read_text()))
    assert result.ret == 0, checks
    return checks


def test_a_second_session_in_the_same_process_inspects_and_runs_afresh(
    pytester: pytest.Pytester,
    example_image: Callable[[str | Path], str],
    docker_client: docker.DockerClient,
    shared_tag: str,
) -> None:
    first_image = docker_client.images.get(example_image(IMAGES / "epochs"))
    second_image = docker_client.images.get(example_image("valid/train-on-path"))
    assert first_image.id != second_image.id

    first_image.tag(shared_tag)
    first = run_session(pytester, shared_tag, pytester.path / "first.json")
    second_image.tag(shared_tag)  # the same tag now names another image
    second = run_session(pytester, shared_tag, pytester.path / "second.json")

    for checks in (first, second):
        assert {cid: outcome for cid, (outcome, _) in checks.items()} == {
            "SM-IMG-EXEC-FORM": "passed",
            "SM-RUN-DEFAULT": "passed",
            "SM-OUT-MODEL": "passed",  # reads the default run's model.tar.gz from this session's S3
        }
    # Each session read the facts of the image the tag named then, not the first session's.
    ids = [
        json.loads((pytester.path / name).read_text())["images"][0]["image_id"]
        for name in ("first.json", "second.json")
    ]
    assert ids == [first_image.id, second_image.id]
    # Each ran its own default run (its own TrainingJobName, so its own model.tar.gz URI).
    uris = [checks["SM-OUT-MODEL"][1].split()[0] for checks in (first, second)]
    assert all(uri.startswith("s3://") and uri.endswith("/output/model.tar.gz") for uri in uris), uris
    assert uris[0] != uris[1]


class RefuseEngineInHeader:
    """Fails the header hook if anything in it asks for the engine (connect, reap, probe container)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_report_header(self, config: pytest.Config) -> object:
        session = session_of(config)

        def refuse() -> None:
            raise AssertionError("pytest_report_header reached the Docker engine")

        session._measure = refuse  # type: ignore[method-assign,assignment]
        try:
            return (yield)
        finally:
            del session._measure


def test_the_header_only_reads_what_session_start_measured(
    pytester: pytest.Pytester, example_image: Callable[[str | Path], str], no_leftovers: str
) -> None:
    image = example_image(IMAGES / "epochs")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--sm-image={image}", "--collect-only", plugins=[RefuseEngineInHeader()]
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([f"sagemaker-contract: sm_image={image} (--sm-image)", "sagemaker-contract: engine *"])


def test_a_pytest_started_inside_an_xdist_worker_is_not_that_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session launched from a worker's test inherits PYTEST_XDIST_WORKER but is no worker: its run id must
    not start with the worker's `<test run>-gw…` prefix, which that run's interrupted controller sweeps."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "feedc0de" * 4)
    monkeypatch.delenv("SM_CONTRACT_RUN_ID", raising=False)
    pytester.makepyfile(
        "from pytest_sagemaker_contract.session import session_of\n"
        "def test_run_id(request):\n"
        "    print('RUN_ID=' + session_of(request.config).run_id)\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sm-image=unused:tag", "--sm-no-suite", "-s")
    result.assert_outcomes(passed=1)
    [run_id] = re.findall(r"RUN_ID=(\S+)", result.stdout.str())
    assert "gw7" not in run_id, run_id
    assert "feedc0de" not in run_id, run_id
