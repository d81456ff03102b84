"""Restarts within a job as pure rules (contract §11): deadlines over attempts, when a job restarts, the status
transitions, RetryStrategy and MaxWait parsing, and the restored-checkpoint read witness."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.platform.result import Restart, SecondaryStatusLog
from pytest_sagemaker_contract.platform.spot import (
    INTERRUPTED,
    RETRIED,
    ReadWitness,
    atime_recorded,
    next_deadline,
    restart_cause,
)
from pytest_sagemaker_contract.spec import RequestError, parse_request


def _request(**extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": "unit-job",
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "AlgorithmSpecification": {"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        **extra,
    }


# -- deadlines ------------------------------------------------------------------------------------


def test_runtime_counts_the_training_of_earlier_attempts() -> None:
    deadline = next_deadline(created=0.0, started=100.0, trained_s=40.0, max_runtime_s=60, max_wait_s=None)
    assert (deadline.at, deadline.reason) == (120.0, "MaxRuntimeExceeded")


def test_runtime_already_spent_stops_at_once() -> None:
    deadline = next_deadline(created=0.0, started=100.0, trained_s=90.0, max_runtime_s=60, max_wait_s=None)
    assert deadline.at == 100.0


def test_max_wait_counts_from_creation_across_attempts() -> None:
    # Created at 0, restarted at 50 after 20 s of training: the runtime would allow until 90, the wait until 60.
    deadline = next_deadline(created=0.0, started=50.0, trained_s=20.0, max_runtime_s=60, max_wait_s=60)
    assert (deadline.at, deadline.reason) == (60.0, "MaxWaitTimeExceeded")


def test_a_tie_is_max_runtime() -> None:
    deadline = next_deadline(created=0.0, started=0.0, trained_s=0.0, max_runtime_s=60, max_wait_s=60)
    assert deadline.reason == "MaxRuntimeExceeded"


# -- when a job restarts ---------------------------------------------------------------------------


def _cause(**kw: Any) -> str | None:
    args: dict[str, Any] = {
        "interrupted": False,
        "engine_fault": None,
        "stop_reason": None,
        "managed_spot": True,
        "retries_used": 0,
        "max_retries": 0,
    }
    args.update(kw)
    return restart_cause(**args)


def test_an_interrupted_spot_job_restarts() -> None:
    assert _cause(interrupted=True) == INTERRUPTED


def test_only_spot_jobs_are_restarted_after_an_interruption() -> None:
    assert _cause(interrupted=True, managed_spot=False) is None


def test_a_stop_ends_the_job_even_during_an_interruption() -> None:
    assert _cause(interrupted=True, stop_reason="MaxWaitTimeExceeded") is None
    assert _cause(engine_fault="killed", max_retries=3, stop_reason="Stopped") is None


def test_an_engine_fault_is_retried_while_attempts_are_left() -> None:
    assert _cause(engine_fault="container killed from outside", max_retries=2, retries_used=1) == RETRIED
    assert _cause(engine_fault="container killed from outside", max_retries=2, retries_used=2) is None
    assert _cause(engine_fault="container killed from outside") is None


def test_a_clean_end_never_restarts() -> None:
    assert _cause(max_retries=5) is None


# -- SecondaryStatusTransitions -------------------------------------------------------------------


def test_transitions_close_each_status_when_the_next_begins() -> None:
    log = SecondaryStatusLog()
    for at, status in enumerate(["Starting", "Downloading", "Training", "Interrupted", "Starting", "Completed"]):
        log.enter(status, f"{status} message", now=float(at))
    entries = log.as_list()
    assert [e["Status"] for e in entries] == log.statuses()
    assert [(e["StartTime"], e["EndTime"]) for e in entries] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 5)]
    assert entries[3]["StatusMessage"] == "Interrupted message"


def test_repeating_the_current_status_updates_its_message() -> None:
    log = SecondaryStatusLog()
    log.enter("Training", "first", now=1.0)
    log.enter("Training", "second", now=2.0)
    assert log.as_list() == [{"Status": "Training", "StartTime": 1.0, "StatusMessage": "second"}]


def test_restart_record_as_dict() -> None:
    record = Restart(1, INTERRUPTED, "why", 5.0, ["a"], ["a"], None)
    assert record.as_dict() == {
        "attempt": 1,
        "cause": "Interrupted",
        "reason": "why",
        "at": 5.0,
        "checkpoints_saved": ["a"],
        "restored": ["a"],
        "read": None,
    }


# -- the request ---------------------------------------------------------------------------------


def test_spot_and_retry_fields_are_parsed() -> None:
    req = _request(EnableManagedSpotTraining=True, RetryStrategy={"MaximumRetryAttempts": 3})
    req["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200
    spec = parse_request(req)
    assert (spec.managed_spot, spec.max_wait_s, spec.max_retry_attempts) == (True, 7200, 3)
    assert not {"EnableManagedSpotTraining", "RetryStrategy"} & set(spec.not_simulated)


def test_an_on_demand_job_has_no_wait_and_no_retries() -> None:
    spec = parse_request(_request())
    assert (spec.managed_spot, spec.max_wait_s, spec.max_retry_attempts) == (False, None, 0)


@pytest.mark.parametrize("attempts", [0, 31])
def test_retry_attempts_outside_the_api_range_are_refused(attempts: int) -> None:
    with pytest.raises(RequestError, match="MaximumRetryAttempts"):
        parse_request(_request(RetryStrategy={"MaximumRetryAttempts": attempts}))


def test_max_wait_below_max_runtime_is_refused() -> None:
    req = _request(EnableManagedSpotTraining=True)
    req["StoppingCondition"] = {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 3600}
    with pytest.raises(RequestError, match=r"MaxWaitTimeInSeconds: 3600; .* >= MaxRuntimeInSeconds \(7200\)"):
        parse_request(req)


# -- the read witness ----------------------------------------------------------------------------


@pytest.fixture
def restored(tmp_path: Path) -> dict[str, Path]:
    if not atime_recorded(tmp_path):
        pytest.skip(f"{tmp_path} keeps no access times (noatime)")
    files = {}
    for name in ("a", "b"):
        (tmp_path / name).write_text(f"checkpoint {name}")
        files[name] = tmp_path / name
    return files


def test_a_read_file_is_seen_and_an_untouched_one_is_not(restored: dict[str, Path]) -> None:
    witness = ReadWitness(restored, supported=True)
    restored["a"].read_bytes()
    assert witness.read() == ["a"]


def test_a_file_read_then_replaced_counts_as_read(restored: dict[str, Path]) -> None:
    witness = ReadWitness(restored, supported=True)
    restored["a"].read_bytes()
    fresh = restored["a"].with_name(".a.partial")
    fresh.write_text("newer")
    os.replace(fresh, restored["a"])  # the old inode is gone from the directory; the witness still holds it
    assert witness.read() == ["a"]


def test_a_file_rewritten_unread_then_read_by_the_sync_is_not_read(restored: dict[str, Path]) -> None:
    witness = ReadWitness(restored, supported=True, poll_s=3600)  # no watcher look in between: the final one
    restored["b"].write_text("started over")
    witness._check()  # the watcher sees the change first
    restored["b"].read_bytes()  # then the checkpoint sync reads the new bytes to upload them
    assert witness.read() == []


def test_arming_keeps_bytes_and_mtime(restored: dict[str, Path]) -> None:
    before = restored["a"].stat().st_mtime_ns
    witness = ReadWitness(restored, supported=True)
    assert restored["a"].stat().st_mtime_ns == before
    assert restored["a"].read_text() == "checkpoint a"
    witness.read()


def test_without_access_times_the_witness_cannot_tell(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    witness = ReadWitness({"a": tmp_path / "a"}, supported=False)
    (tmp_path / "a").read_bytes()
    assert witness.read() is None
