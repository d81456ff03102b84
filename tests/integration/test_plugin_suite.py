"""The built-in contract suite end to end: `pytest --sm-image ...` in a subprocess, real engine, real moto."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from ..helpers import KMEANS_SUITE_ARGS
from .conftest_helpers import ALL_CHECKS, IMAGES, outcomes_by_check, run_suite

#: The kmeans job's clauses that do not apply to it: its ENTRYPOINT receives "train", it runs on one host.
KMEANS_NOT_APPLICABLE = {"SM-IMG-TRAIN-ON-PATH", "SM-HOSTS-MULTI"}
#: Checks whose outcome depends on the host's GPUs: passed where the instance has GPUs to give, else a structural
#: skip that says the instance type has none.
GPU_CHECKS = {"SM-GPU-VISIBLE"}


def test_kmeans_example_passes_every_clause(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image("kmeans")
    report = pytester.path / "report.json"
    result = run_suite(
        pytester,
        f"--sm-image={image}",
        *KMEANS_SUITE_ARGS,
        f"--sm-report={report}",
        f"--junitxml={pytester.path / 'junit.xml'}",
    )
    data = json.loads(report.read_text())
    entry = data["images"][0]
    by_id = {c["id"]: c for c in entry["checks"]}
    for check_id in KMEANS_NOT_APPLICABLE:
        assert (by_id[check_id]["outcome"], by_id[check_id].get("skip")) == ("skipped", "structural"), by_id[check_id]
    gpu_passed = set()
    for check_id in GPU_CHECKS:
        check = by_id[check_id]
        if check["outcome"] == "passed":
            gpu_passed.add(check_id)
        else:
            assert (check["outcome"], check.get("skip")) == ("skipped", "structural"), check
            assert check["message"].startswith("instance type ml.m5.large has no GPUs"), check
    failed = [
        c for c in entry["checks"] if c["id"] not in KMEANS_NOT_APPLICABLE | GPU_CHECKS and c["outcome"] != "passed"
    ]
    assert failed == []
    passed = len(ALL_CHECKS) - len(KMEANS_NOT_APPLICABLE) - len(GPU_CHECKS) + len(gpu_passed)
    skipped = len(ALL_CHECKS) - passed
    result.assert_outcomes(passed=passed, skipped=skipped)
    result.stdout.fnmatch_lines(
        [
            "*sagemaker-contract: sm_image=*kmeans* (--sm-image), sm_job=*job.json (--sm-job)*",
            f"collected {len(ALL_CHECKS)} items",
            "*SageMaker training contract*",
            "*SM-RUN-DEFAULT*PASS*docker run IMAGE train: Completed*",
            "*SM-OUT-MODEL*PASS*s3://example-bucket/kmeans/output/*/output/model.tar.gz holds 1 file(s): model.json",
            "*SM-SIG-TERM*PASS*exited * s after SIGTERM (grace 10 s), exit code 0; PID 1 (*) catches SIGTERM; model "
            "saved: model.json",
            "*SM-CKPT-RESUME*PASS*checkpoint file(s) synced before the stop*restored; the resumed run Completed",
            "*SM-SPOT-RESTART*PASS*restarted in the same job (*Interrupted → Starting*it read 1 of them (state.json)*",
            "*SM-DATA-MODES*PASS*File: the only mode the job declares, proven by SM-RUN-DEFAULT*",
            "*SM-NET-ISOLATION*PASS*Completed with EnableNetworkIsolation*",
            f"*SM-GPU-VISIBLE*{'PASS' if 'SM-GPU-VISIBLE' in gpu_passed else 'SKIP'}*",
            f"*{passed} passed, 0 failed, {skipped} skipped",
        ]
    )
    assert [i["image"] for i in data["images"]] == [image]
    assert entry["image_id"].startswith("sha256:")
    assert [c["id"] for c in entry["checks"]] == list(ALL_CHECKS)
    for c in entry["checks"]:
        assert set(c) >= {"id", "clause", "outcome", "message", "duration_s"}
        assert c["outcome"] in ("passed", "failed", "skipped")
        assert c["message"]
    junit = ET.parse(pytester.path / "junit.xml")
    props = {
        (case.get("name"), p.get("name")): p.get("value")
        for case in junit.iter("testcase")
        for p in case.iter("property")
    }
    assert props[("SM-RUN-DEFAULT", "sm_check_id")] == "SM-RUN-DEFAULT"
    assert props[("SM-RUN-DEFAULT", "sm_image")] == image
    assert props[("SM-RUN-DEFAULT", "sm_outcome")] == "passed"
    assert props[("SM-RUN-DEFAULT", "sm_image_id")].startswith("sha256:")


EXPECTED_FAILURES = {
    "broken/shell-form": ({"SM-IMG-EXEC-FORM"}, r"shell form.*exec form"),
    "broken/tini": ({"SM-IMG-NO-TINI"}, r"tini"),
    "broken/opt-ml-files": ({"SM-IMG-OPT-ML-EMPTY"}, r"/opt/ml/model/pretrained.bin"),
    "broken/bundled-driver": ({"SM-IMG-NO-DRIVER"}, r"libcuda.so.1"),
    "broken/no-train": (
        {
            "SM-IMG-TRAIN-ON-PATH",
            "SM-RUN-DEFAULT",
            "SM-RUN-ENTRYPOINT",
            "SM-RUN-ARGUMENTS",
            "SM-RUN-BOTH",
            "SM-RUN-EXTERNAL-SCRIPT",
            "SM-OUT-MODEL",
            "SM-SIG-TERM",
            "SM-SIG-MAX-RUNTIME",
            "SM-NET-ISOLATION",
        },
        r'exec: "train": executable file not found',
    ),
}


@pytest.mark.parametrize("example", list(EXPECTED_FAILURES))
def test_broken_example_fails_exactly_its_clause(
    pytester: pytest.Pytester, example_image: Callable[[str], str], example: str, no_leftovers: None
) -> None:
    image = example_image(example)
    report = pytester.path / "report.json"
    result = run_suite(pytester, f"--sm-image={image}", f"--sm-report={report}")
    checks = outcomes_by_check(json.loads(report.read_text()))
    expected, pattern = EXPECTED_FAILURES[example]
    failed = {cid for cid, (outcome, _) in checks.items() if outcome == "failed"}
    assert failed == expected, checks
    assert result.ret == 1
    first = sorted(expected, key=ALL_CHECKS.index)[0]
    assert re.search(pattern, checks[first][1]), checks[first]
    for cid in set(ALL_CHECKS) - expected:
        assert checks[cid][0] in ("passed", "skipped"), (cid, checks[cid])


def test_dependent_checks_point_at_the_default_run(
    pytester: pytest.Pytester, example_image: Callable[[str], str]
) -> None:
    image = example_image("broken/no-train")
    result = run_suite(pytester, f"--sm-image={image}", "-k", "SM-RUN or SM-OUT")
    result.assert_outcomes(failed=6)
    text = result.stdout.str()
    assert text.count("executable file not found") >= 1
    result.stdout.fnmatch_lines(["*SM-RUN-BOTH: blocked by SM-RUN-DEFAULT: *executable file not found*fix that first*"])
    # one cause, one failure: each dependent check is one line pointing at it, with no log tail of its own;
    # pytest's short summary repeats messages (cut or whole, by terminal width), so count the failures section
    failures = text.split("short test summary info")[0]
    assert failures.count(": blocked by SM-RUN-DEFAULT: ") == 5
    assert text.count("sagemaker log (tail)") <= 1


def test_failed_run_reports_failure_reason_and_log_tail(
    pytester: pytest.Pytester, example_image: Callable[[str], str], no_leftovers: None
) -> None:
    image = example_image(IMAGES / "fails-with-log")
    result = run_suite(pytester, f"--sm-image={image}", "-k", "SM-RUN-DEFAULT")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*SM-RUN-DEFAULT (*): docker run IMAGE train: TrainingJobStatus Failed, "
            "FailureReason: AlgorithmError: ValueError: loss diverged at epoch 1, exit code: 2*",
            "*sagemaker log (tail)*",
        ]
    )
    # stdout and stderr arrive as two streams: each keeps its order, but not against the other.
    section = result.stdout.str().split("sagemaker log (tail)", 1)[1]
    tail = section.split("(full log: ", 1)[0].splitlines()
    assert tail.index("loading data") < tail.index("epoch 1 loss=nan")
    assert "fatal: loss diverged" in tail
    assert ".log)" in section.split("(full log: ", 1)[1].splitlines()[0]


def test_missing_image_is_one_clear_failure(pytester: pytest.Pytester, no_leftovers: None) -> None:
    result = run_suite(pytester, "--sm-image=sm-contract-test/does-not-exist:1", "-k", "SM-IMG-EXEC-FORM")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sm-contract-test/does-not-exist:1*not present locally*build or load it first*"])
    assert "Traceback" not in result.stdout.str()


def test_ini_configuration_and_header_source(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    image = example_image("valid/train-on-path")
    pytester.makeini(f"[pytest]\nsm_image = {image}\nsm_expect_model = model.txt\n")
    result = run_suite(pytester, "-k", "SM-RUN-DEFAULT or SM-IMG-TRAIN-ON-PATH")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*sm_image={image} (ini sm_image)*"])


def test_keep_prints_paths_and_leaves_containers(
    pytester: pytest.Pytester, example_image: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    image = example_image("valid/train-on-path")
    result = run_suite(pytester, f"--sm-image={image}", "--sm-keep", "-k", "SM-RUN-DEFAULT")
    result.assert_outcomes(passed=1)
    line = next(x for x in result.stdout.lines if "kept job directories under" in x)
    run_id = re.search(r"sm-contract\.run=(\S+?)\)?;", line)
    assert run_id is not None
    path = Path(re.search(r"under (\S+) and", line).group(1))  # type: ignore[union-attr]
    assert path.is_dir()
    labelled = {"label": f"sm-contract.run={run_id.group(1)}"}
    kept = docker_client.api.containers(all=True, filters=labelled)
    assert len([c for c in kept if not c["Names"][0].endswith("-pod")]) == 1  # and its credentials pod (§11)
    for c in kept:
        docker_client.api.remove_container(c["Id"], force=True)
    for network in docker_client.api.networks(filters=labelled):  # the job's own network, kept with it
        docker_client.api.remove_network(network["Id"])
    import shutil

    shutil.rmtree(path)


def test_two_images_get_two_suites(pytester: pytest.Pytester, example_image: Callable[[str], str]) -> None:
    a = example_image("valid/train-on-path")
    b = example_image("broken/tini")
    result = run_suite(pytester, f"--sm-image={a}", f"--sm-image={b}", "-k", "SM-IMG")
    result.assert_outcomes(passed=8, failed=1, skipped=1)
    result.stdout.fnmatch_lines([f"sagemaker-contract/{a} *", f"sagemaker-contract/{b} *"])


def test_a_model_saved_in_the_wrong_place_is_one_failure_that_says_where_it_went(
    pytester: pytest.Pytester, example_image: Callable[[str | Path], str]
) -> None:
    """One cause, one failure (issue 17, item 4): SM-RUN-DEFAULT names where the files went; the checks that rest on
    its model say "blocked by SM-RUN-DEFAULT" in one line, without a log tail of their own."""
    image = example_image(IMAGES / "model-elsewhere")
    report = pytester.path / "report.json"
    result = run_suite(pytester, f"--sm-image={image}", f"--sm-report={report}", "-k", "SM-RUN or SM-OUT")
    checks = {c["id"]: c for c in json.loads(report.read_text())["images"][0]["checks"]}
    default = checks["SM-RUN-DEFAULT"]["message"]
    assert checks["SM-RUN-DEFAULT"]["outcome"] == "failed"
    assert "the model directory /opt/ml/model was empty" in default
    assert "/opt/ml/output/model/m.txt" in default
    assert "/var/models/final.bin" in default
    assert "SageMaker uploads only /opt/ml/model" in default
    blocked = [c for c in checks.values() if c["message"].startswith("blocked by SM-RUN-DEFAULT: ")]
    assert {c["id"] for c in blocked} >= {"SM-OUT-MODEL", "SM-RUN-ENTRYPOINT", "SM-RUN-ARGUMENTS", "SM-RUN-BOTH"}
    assert result.stdout.str().count("sagemaker log (tail)") == 1


def test_a_check_that_waited_for_the_default_run_shows_its_own_duration(
    pytester: pytest.Pytester, example_image: Callable[[str | Path], str]
) -> None:
    """SM-OUT-MODEL reads the default run's model: the 6-s training is SM-RUN-DEFAULT's time, not its own."""
    image = example_image(IMAGES / "epochs")
    report = pytester.path / "report.json"
    result = run_suite(
        pytester,
        f"--sm-image={image}",
        "--sm-env=EPOCHS=6",
        f"--sm-report={report}",
        "-k",
        "SM-RUN-DEFAULT or SM-OUT-MODEL",
    )
    result.assert_outcomes(passed=2)
    checks = {c["id"]: c for c in json.loads(report.read_text())["images"][0]["checks"]}
    default_s, out_model_s = checks["SM-RUN-DEFAULT"]["duration_s"], checks["SM-OUT-MODEL"]["duration_s"]
    assert default_s >= 6.0, checks
    assert out_model_s < default_s / 2, (out_model_s, default_s)
