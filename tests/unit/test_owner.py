"""Owner labels and the pid fallback's rules (no Docker): a pid is judged only where the answer is certain."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from pytest_sagemaker_contract.platform import owner as owner_module
from pytest_sagemaker_contract.platform.owner import INITIAL_PID_NAMESPACE, Owner, current_owner


def test_labels_round_trip_with_the_pid_namespace_and_the_keeper() -> None:
    me = current_owner(keeper=True)
    assert me.pidns == os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    assert Owner.from_mapping(me.labels()) == me
    assert Owner.from_mapping(current_owner().labels()) == current_owner()


def test_the_owner_id_is_per_process() -> None:
    code = "from pytest_sagemaker_contract.platform.owner import current_owner; print(current_owner().id)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert len(current_owner().id) == 16
    assert current_owner().id == current_owner().id
    assert other != current_owner().id


def test_an_older_label_set_is_read_without_a_keeper_and_never_judged_by_pid() -> None:
    legacy = {
        "sm-contract.owner.host": socket.gethostname(),
        "sm-contract.owner.pid": "999999999",
        "sm-contract.owner.start": "1",
    }
    owner = Owner.from_mapping(legacy)
    assert owner is not None
    assert (owner.keeper, owner.pidns, owner.id) == (False, "", "")
    assert not owner.is_dead()  # its PID namespace is unknown: the pid may live in another one


def test_a_keeper_flag_without_an_id_does_not_count() -> None:
    labels = {**current_owner().labels(), "sm-contract.owner.keeper": "1", "sm-contract.owner.id": ""}
    owner = Owner.from_mapping(labels)
    assert owner is not None
    assert not owner.keeper


@pytest.mark.parametrize(
    "broken", [{}, {"sm-contract.owner.host": "h"}, {**current_owner().labels(), "sm-contract.owner.pid": "x"}]
)
def test_labels_that_name_no_owner_give_none(broken: dict[str, str]) -> None:
    assert Owner.from_mapping(broken) is None


def gone_pid() -> int:
    """A pid of a process of ours that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_owner_in_our_own_initial_namespace_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(owner_module, "_pid_namespace", lambda pid="self": INITIAL_PID_NAMESPACE)
    me = current_owner()
    assert not me.is_dead()
    assert Owner(me.host, gone_pid(), me.start, me.pidns).is_dead()
    assert Owner(me.host, me.pid, "0", me.pidns).is_dead(), "a reused pid (other start time) is not the owner"


def test_a_pid_is_never_judged_across_namespaces_or_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(owner_module, "_pid_namespace", lambda pid="self": INITIAL_PID_NAMESPACE)
    me, dead = current_owner(), gone_pid()
    assert not Owner(me.host, dead, me.start, "4026532999").is_dead(), "recorded in another PID namespace"
    assert not Owner("another-machine", dead, me.start, me.pidns).is_dead()
    monkeypatch.setattr(owner_module, "_pid_namespace", lambda pid="self": "4026532999")
    assert not Owner(me.host, dead, me.start, "4026532999").is_dead(), "we are not in the initial namespace"
