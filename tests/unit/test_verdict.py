"""Job status and merge rules without Docker: every FailureReason shape, stop precedence, clashes."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from pytest_sagemaker_contract.platform.artifacts import fingerprint, list_files, merge_roots, modified_inputs
from pytest_sagemaker_contract.platform.result import (
    MAX_FAILURE_REASON,
    OOM_REASON,
    HostResult,
    JobStatus,
    decide_job_status,
)


def host(name: str = "algo-1", code: int | None = 0, **kw: object) -> HostResult:
    return HostResult(host=name, container_id="c", exit_code=code, **kw)  # type: ignore[arg-type]


def test_all_hosts_at_zero_is_completed() -> None:
    assert decide_job_status([host(), host("algo-2")]) == JobStatus("Completed", "Completed", None, 0)


def test_failure_file_text_becomes_the_reason_with_the_exit_code() -> None:
    verdict = decide_job_status([host(code=2, failure_text="ValueError: bad epochs\n")])
    assert verdict == JobStatus("Failed", "Failed", "AlgorithmError: ValueError: bad epochs, exit code: 2", 2)


def test_no_failure_file_points_at_the_logs() -> None:
    reason = decide_job_status([host(code=1)]).FailureReason
    assert reason == "AlgorithmError: See job logs for more information, exit code: 1"


def test_blank_failure_file_is_treated_as_none() -> None:
    assert decide_job_status([host(code=1, failure_text="  \n")]).FailureReason == (
        "AlgorithmError: See job logs for more information, exit code: 1"
    )


@pytest.mark.parametrize("hosts", [1, 3])
def test_a_long_failure_file_is_cut_so_the_exit_code_and_host_survive(hosts: int) -> None:
    failed = host("algo-1", 3, failure_text="x" * 5000)
    others = [host(f"algo-{i}") for i in range(2, hosts + 1)]
    reason = decide_job_status([failed, *others]).FailureReason
    assert reason is not None
    assert len(reason) <= MAX_FAILURE_REASON
    assert reason.startswith("AlgorithmError: xxx")
    expected_end = ", exit code: 3" + (" (host algo-1)" if hosts > 1 else "")
    assert reason.endswith(expected_end)


def test_multi_host_reason_names_the_host_that_failed_first() -> None:
    hosts = [host("algo-1", 137), host("algo-2", 4, failure_text="boom")]
    verdict = decide_job_status(hosts, first_failure="algo-2")
    assert verdict == JobStatus("Failed", "Failed", "AlgorithmError: boom, exit code: 4 (host algo-2)", 4)


def test_without_a_recorded_first_failure_the_first_nonzero_host_decides() -> None:
    verdict = decide_job_status([host("algo-1", 0), host("algo-2", 9)])
    assert verdict.FailureReason == "AlgorithmError: See job logs for more information, exit code: 9 (host algo-2)"


def test_oom_killed_137_is_sagemakers_out_of_memory_reason() -> None:
    assert decide_job_status([host(code=137, oom_killed=True)], oom=True).FailureReason == OOM_REASON


def test_oom_flag_with_another_exit_code_is_an_algorithm_error() -> None:
    reason = decide_job_status([host(code=1)], oom=True).FailureReason
    assert reason is not None
    assert reason.startswith("AlgorithmError:")


def test_a_container_that_cannot_start_is_a_cannot_start_error() -> None:
    verdict = decide_job_status([host(code=127, start_error='exec: "train": executable file not found in $PATH')])
    assert verdict.FailureReason == (
        'AlgorithmError: CannotStartContainerError: exec: "train": executable file not found in $PATH, exit code: 127'
    )


@pytest.mark.parametrize("reason", ["Stopped", "MaxRuntimeExceeded"])
def test_a_stop_wins_over_the_exit_codes_it_caused(reason: str) -> None:
    verdict = decide_job_status([host(code=143, failure_text="killed")], stop_reason=reason, first_failure="algo-1")
    assert verdict == JobStatus("Stopped", reason, None, 143)


def test_a_stopped_job_that_exited_cleanly_reports_exit_code_zero() -> None:
    assert decide_job_status([host(code=0)], stop_reason="Stopped") == JobStatus("Stopped", "Stopped", None, 0)


def test_a_staging_client_error_fails_the_job_before_any_container() -> None:
    verdict = decide_job_status(
        [host(code=None)], client_error="ClientError: no object under s3://b/x", stop_reason="Stopped"
    )
    assert verdict == JobStatus("Failed", "Failed", "ClientError: no object under s3://b/x", None)


# -- artifacts: the merge rule --------------------------------------------------------------


def write(root: Path, name: str, data: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


def test_hosts_merge_and_identical_copies_are_not_clashes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "weights.bin", "same")
    write(b, "weights.bin", "same")
    write(b, "extra/only-b.txt", "b")
    merged = merge_roots([a, b])
    assert merged.files == ["extra/only-b.txt", "weights.bin"]
    assert merged.clashes == []


def test_differing_files_clash_and_the_first_host_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "model.json", "from-a")
    write(b, "model.json", "from-b")
    merged = merge_roots([a, b])
    assert merged.clashes == ["model.json"]
    [(path, _name)] = [(p, n) for p, n in merged.entries if n == "model.json"]
    assert path.read_text() == "from-a"


def test_a_missing_host_directory_is_skipped(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write(a, "m", "x")
    assert merge_roots([tmp_path / "absent", a]).files == ["m"]


def test_list_files_and_modified_inputs(tmp_path: Path) -> None:
    write(tmp_path, "d/x.csv", "1")
    write(tmp_path, "y.csv", "2")
    assert list_files(tmp_path) == ["d/x.csv", "y.csv"]
    before = {str(tmp_path / "y.csv"): fingerprint(str(tmp_path / "y.csv"))}
    assert modified_inputs(before) == []  # type: ignore[arg-type]
    (tmp_path / "y.csv").write_text("changed!")
    assert modified_inputs(before) == [str(tmp_path / "y.csv")]  # type: ignore[arg-type]


def test_archives_keep_directories_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write(a, "sub/w.bin", "w")
    merged = merge_roots([a])
    assert [n for _p, n in merged.entries] == ["sub", "sub/w.bin"]
    archive = tmp_path / "m.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path, name in merged.entries:
            tar.add(path, arcname=name, recursive=False)
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["sub", "sub/w.bin"]
