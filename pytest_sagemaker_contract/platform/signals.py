"""What SIGTERM can do inside a container: each process's SIGTERM disposition at the moment it is sent.

A stop verdict needs positive evidence that the signal ended the run (contract §5): a container that
merely finished training inside the grace proves nothing, because on a run longer than the grace
SageMaker SIGKILLs it. The kernel gives that evidence in /proc/<pid>/status (SigCgt, SigIgn, SigBlk),
read for every process of the container just before SIGTERM goes out. Pure parsing lives here; the
engine reads the files (on the host for a local engine, through `docker exec` otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = [
    "Disposition",
    "ProcessSignals",
    "descendants_of_init",
    "parse_status",
    "parse_status_dump",
    "sigterm_disposition",
    "waits_for_signals",
]

#: "caught": a handler runs; "ignored": SIG_IGN; "blocked": masked and not caught — an init such as tini or
#: dumb-init that waits for signals with sigwait/signalfd and forwards them; "default": the default action
#: (death for any process but a namespace's PID 1, which the kernel shields from it).
Disposition = Literal["caught", "ignored", "blocked", "default"]

_TERM_BIT = 1 << (15 - 1)
_DISPOSITIONS: tuple[Disposition, ...] = ("caught", "ignored", "blocked", "default")


@dataclass(frozen=True)
class ProcessSignals:
    """One process as the container's own PID namespace numbers it, with its SIGTERM disposition."""

    pid: int
    ppid: int
    name: str
    command: str
    sigterm: Disposition | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ProcessSignals:
        known: dict[object, Disposition] = {d: d for d in _DISPOSITIONS}
        return cls(
            pid=int(str(data.get("pid", 0))),
            ppid=int(str(data.get("ppid", 0))),
            name=str(data.get("name", "")),
            command=str(data.get("command", "")),
            sigterm=known.get(data.get("sigterm")),
        )


def sigterm_disposition(proc_status: str) -> Disposition | None:
    """From a /proc/<pid>/status text: SIGTERM caught, ignored, blocked (and not caught) or at its default."""
    masks = _fields(proc_status)
    try:
        caught = int(masks["SigCgt"], 16)
    except (KeyError, ValueError):
        return None
    if caught & _TERM_BIT:
        return "caught"
    try:
        if int(masks.get("SigIgn", "0"), 16) & _TERM_BIT:
            return "ignored"
        if int(masks.get("SigBlk", "0"), 16) & _TERM_BIT:
            return "blocked"
    except ValueError:
        return None
    return "default"


def _fields(proc_status: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in proc_status.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def waits_for_signals(wchan: str) -> bool:
    """Whether a process sleeps in sigwait/sigtimedwait (/proc/<pid>/wchan): an init such as tini or dumb-init.

    Not sigsuspend: a shell waiting for its foreground child sleeps there with SIGTERM at its default.

    The kernel unblocks the awaited signals for the duration of the wait, so SigBlk then shows SIGTERM as
    neither blocked nor caught, although the process takes it synchronously.
    """
    return "sigtimedwait" in wchan


def parse_status(
    proc_status: str, command: str = "", host_ppids: Mapping[int, int] | None = None, wchan: str = ""
) -> ProcessSignals | None:
    """One process from its status text, numbered as inside the container (the last NSpid entry).

    `host_ppids` maps host pids to container pids, for a status read from the host's /proc, where PPid is
    the parent's host pid.
    """
    fields = _fields(proc_status)
    try:
        nspids = fields.get("NSpid", fields.get("Pid", "")).split()
        pid = int(nspids[-1])
        ppid = int(fields.get("PPid", "0"))
    except (IndexError, ValueError):
        return None
    if host_ppids is not None:
        ppid = host_ppids.get(ppid, 0)
    name = fields.get("Name", "")
    disposition = sigterm_disposition(proc_status)
    if disposition == "default" and waits_for_signals(wchan or fields.get("Wchan", "")):
        disposition = "blocked"
    return ProcessSignals(pid, ppid, name, command or name, disposition)


def parse_status_dump(dump: str, commands: Mapping[int, str] | None = None) -> list[ProcessSignals]:
    """Processes from concatenated /proc/*/status texts (read inside the container), ordered by pid."""
    found: dict[int, ProcessSignals] = {}
    for block in _blocks(dump.splitlines()):
        text = "\n".join(block)
        process = parse_status(text)
        if process is not None and process.pid > 0:
            command = (commands or {}).get(process.pid, "") or _fields(text).get("Cmdline", "")
            found[process.pid] = ProcessSignals(
                process.pid, process.ppid, process.name, command or process.name, process.sigterm
            )
    return descendants_of_init(found.values())


def descendants_of_init(processes: Iterable[ProcessSignals]) -> list[ProcessSignals]:
    """PID 1 and its descendants, ordered by pid: drops the reader itself (a `docker exec` has no parent
    inside the container) and anything else exec'd from outside."""
    by_pid = {p.pid: p for p in processes}
    kept: list[ProcessSignals] = []
    for pid in sorted(by_pid):
        seen: set[int] = set()
        current: int = pid
        while current != 1 and current in by_pid and current not in seen:
            seen.add(current)
            current = by_pid[current].ppid
        if current == 1 and 1 in by_pid:
            kept.append(by_pid[pid])
    return kept


def _blocks(lines: Iterable[str]) -> Iterable[list[str]]:
    block: list[str] = []
    for line in lines:
        if line.startswith("Name:") and block:
            yield block
            block = []
        if line.strip():
            block.append(line)
    if block:
        yield block
