"""PID 1 for a sagemaker-training image: start the toolkit, forward SIGTERM to what it runs, wait for all of it.

The toolkit's `train` has no SIGTERM handler and does not pass the signal on to the user's script
(aws/sagemaker-training-toolkit#125, #173): as PID 1 it ignores SIGTERM (the kernel's rule for PID 1),
the script's own handler never runs and SageMaker SIGKILLs the container 120 s later. This wrapper is
PID 1 instead (exec-form ENTRYPOINT): it starts its arguments (`train`, which SageMaker passes) in a
process group of their own and, on SIGTERM or SIGINT, signals every process of that group below the
toolkit (the user's entry point and what it started). A signal that comes before the entry point has
installed a SIGTERM handler (the toolkit takes seconds to start it) is held until one has, or for
HOLD_S seconds, so it is not lost or fatal to a script still importing. The toolkit then sees its
child exit and ends as usual. The wrapper reaps every process it adopts and exits with the toolkit's
exit code. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def group_members(pgid: int) -> list[int]:
    """Processes in process group `pgid`, from /proc/<pid>/stat (fields after the command: state ppid pgrp)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


HOLD_S = 5.0
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & SIGTERM_BIT)


def main(argv: list[str]) -> int:
    toolkit = subprocess.Popen(argv or ["train"], start_new_session=True)
    pending: list[tuple[int, float]] = []  # (signal, when it came) not yet forwarded

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append((signum, time.monotonic()))

    def forward() -> None:
        below = [pid for pid in group_members(toolkit.pid) if pid != toolkit.pid]
        signum, since = pending[0]
        ready = any(catches_sigterm(pid) for pid in below) or time.monotonic() - since > HOLD_S
        if not below or not ready:
            return
        print(f"forward-sigterm: signal {signum} forwarded to {below}", file=sys.stderr, flush=True)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        pending.clear()

    signal.signal(signal.SIGTERM, hold)
    signal.signal(signal.SIGINT, hold)
    code = None
    while True:  # as PID 1, also reap whatever is reparented to us
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == toolkit.pid:
            code = os.waitstatus_to_exitcode(status)
        elif pid == 0:
            if pending:
                forward()
            time.sleep(0.1)
    toolkit.returncode = code
    if code is None:
        return 1
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
