"""What SIGTERM can do, from dispositions read in /proc: the evidence every stop verdict rests on (§5)."""

from __future__ import annotations

import pytest

from pytest_sagemaker_contract.diagnosis import sigterm_effect
from pytest_sagemaker_contract.platform.signals import (
    ProcessSignals,
    descendants_of_init,
    parse_status,
    parse_status_dump,
    sigterm_disposition,
)

TERM = 1 << 14


def status(name: str, pid: int, ppid: int, *, cgt: int = 0, ign: int = 0, blk: int = 0, wchan: str = "") -> str:
    text = (
        f"Name:\t{name}\nPid:\t{pid}\nPPid:\t{ppid}\nNSpid:\t{pid + 1000}\t{pid}\n"
        f"SigBlk:\t{blk:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n"
    )
    return text + (f"Wchan:\t{wchan}\n" if wchan else "")


def proc(pid: int, ppid: int, command: str, sigterm: str | None) -> ProcessSignals:
    return ProcessSignals(pid, ppid, command.split()[0], command, sigterm)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        ({"cgt": TERM}, "caught"),
        ({"ign": TERM}, "ignored"),
        ({"blk": TERM}, "blocked"),
        ({"cgt": TERM, "blk": TERM}, "caught"),
        ({"cgt": 1 << 1, "ign": 1 << 12}, "default"),
    ],
)
def test_dispositions_from_the_masks(masks: dict[str, int], expected: str) -> None:
    assert sigterm_disposition(status("x", 1, 0, **masks)) == expected


def test_an_init_waiting_in_sigtimedwait_counts_as_blocked() -> None:
    """During sigtimedwait the kernel unblocks the awaited signals, so only wchan shows tini's forwarding."""
    text = status("tini", 1, 0, ign=0x300000)
    assert sigterm_disposition(text) == "default"
    parsed = parse_status(text, wchan="do_sigtimedwait.isra.0")
    assert parsed is not None
    assert parsed.sigterm == "blocked"
    assert parsed.pid == 1


def test_dump_read_inside_the_container_drops_the_reader() -> None:
    dump = (
        status("tini", 1, 0, wchan="do_sigtimedwait.isra.0")
        + "Cmdline:\t/sbin/tini -- train \n"
        + status("sh", 6, 1, ign=TERM)
        + status("sh", 40, 0)  # the docker exec'd reader: no parent inside the container
        + status("cat", 41, 40)
    )
    found = parse_status_dump(dump)
    assert [(p.pid, p.sigterm) for p in found] == [(1, "blocked"), (6, "ignored")]
    assert found[0].command == "/sbin/tini -- train"


def test_host_pids_are_mapped_into_the_container() -> None:
    parsed = parse_status(status("python3", 7, 0).replace("PPid:\t0", "PPid:\t5001"), host_ppids={5001: 1})
    assert parsed is not None
    assert (parsed.pid, parsed.ppid) == (7, 1)
    assert descendants_of_init([proc(1, 0, "init", "caught"), parsed, proc(9, 3, "x", None)]) == [
        proc(1, 0, "init", "caught"),
        parsed,
    ]


@pytest.mark.parametrize(
    ("tree", "acts", "words"),
    [
        ([proc(1, 0, "python3 train.py", "caught")], True, "catches SIGTERM"),
        ([proc(1, 0, "python3 train.py", "default")], False, "has no SIGTERM handler"),
        ([proc(1, 0, "/bin/sh train.sh", "default"), proc(6, 1, "sleep 1", "default")], False, "is a shell"),
        ([proc(1, 0, "/bin/sh train.sh", "ignored")], False, "ignores SIGTERM"),
        ([proc(1, 0, "tini -- t", "blocked"), proc(6, 1, "sh t", "default")], True, "which dies of it"),
        ([proc(1, 0, "tini -- t", "blocked"), proc(6, 1, "python3 t", "caught")], True, "which catches it"),
        ([proc(1, 0, "tini -- t", "blocked"), proc(6, 1, "sh t", "ignored")], False, "which ignores it"),
        ([proc(1, 0, "daemon", "blocked")], True, "sigwait/signalfd"),
        ([], None, "could not be read"),
        ([proc(1, 0, "x", None)], None, "could not be read"),
    ],
)
def test_sigterm_effect(tree: list[ProcessSignals], acts: bool | None, words: str) -> None:
    effect = sigterm_effect(tree)
    assert effect.acts is acts
    assert words in effect.evidence
    if acts is False:
        assert effect.fix
