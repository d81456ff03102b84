"""Why a container did not stop in time after SIGTERM, from what was observed (contract §5).

Pure functions over the process tree (`docker top` at the moment SIGTERM was sent), PID 1's SIGTERM
disposition (/proc/1/status) and the log lines printed after SIGTERM, so each diagnosis can be
unit-tested and a message names the cause and the fix.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence

__all__ = ["diagnose_kill", "pid1_command", "process_tree_text"]

_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"})
_TOOLKIT_MARKERS = ("sagemaker_training", "sagemaker-training", "sagemaker_containers")


def _command(row: Mapping[str, str]) -> str:
    return row.get("COMMAND") or row.get("CMD") or row.get("ARGS") or ""


def pid1_command(tree: Sequence[Mapping[str, str]]) -> str:
    """The container's PID 1 command line: the row whose parent is not in the tree (docker top shows host PIDs)."""
    pids = {row.get("PID") for row in tree}
    for row in tree:
        if row.get("PPID") not in pids:
            return _command(row)
    return _command(tree[0]) if tree else ""


def _root(tree: Sequence[Mapping[str, str]]) -> str | None:
    pids = {row.get("PID") for row in tree}
    return next((row.get("PID") for row in tree if row.get("PPID") not in pids), None)


def _children(tree: Sequence[Mapping[str, str]]) -> list[str]:
    root = _root(tree)
    return [_command(row) for row in tree if row.get("PPID") == root]


def process_tree_text(tree: Sequence[Mapping[str, str]]) -> str:
    if not tree:
        return "(process tree not captured)"
    return "\n".join(f"  {row.get('PID', '?'):>7} {row.get('PPID', '?'):>7}  {_command(row)}" for row in tree)


def _program(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    return posixpath.basename(argv[0]) if argv else ""


def diagnose_kill(
    *,
    tree: Sequence[Mapping[str, str]],
    pid1_sigterm: str | None,
    logs_after_sigterm: Sequence[str],
    grace_s: float,
    tree_at_kill: Sequence[Mapping[str, str]] = (),
) -> str:
    """One or two sentences: the likely cause of a SIGKILL at the end of the grace period, and the fix."""
    if not tree:  # the snapshot at SIGTERM failed; the one just before SIGKILL shows the same PID 1
        tree = tree_at_kill
    pid1 = pid1_command(tree)
    program = _program(pid1)
    children = _children(tree)
    child = children[0] if children else ""
    short_grace = f" (this run used --sm-grace {grace_s:g}; SageMaker gives 120 s)" if grace_s < 120 else ""
    if any(marker in pid1 for marker in _TOOLKIT_MARKERS) or (
        program in ("train", "python", "python3") and any(m in " ".join(children) for m in _TOOLKIT_MARKERS)
    ):
        return (
            f"PID 1 is the sagemaker-training toolkit ({pid1}), which does not forward SIGTERM to the user script"
            f"{f' ({child})' if child else ''} (a known open issue of the toolkit). Run the script as PID 1 "
            "(exec-form ENTRYPOINT, or ContainerEntrypoint) or handle SIGTERM in a launcher that forwards it."
        )
    child_pids = {row.get("PID") for row in tree if row.get("PPID") == _root(tree)}
    still_there = bool(tree_at_kill) and child_pids <= {row.get("PID") for row in tree_at_kill}
    shell_ignores = program in _SHELLS and pid1_sigterm in ("default", "ignored", None)
    if shell_ignores or (program in _SHELLS and children and (still_there or not tree_at_kill)):
        if pid1_sigterm == "caught":
            return (
                f"PID 1 is a shell ({pid1}) with a SIGTERM trap, but it runs {child} in the foreground: the shell "
                "runs its trap only after that child exits, and does not forward the signal. Use `exec` so the "
                "program is PID 1 and handles SIGTERM itself, or start it in the background, `wait`, and forward "
                "the signal from the trap."
            )
        running = f", running {child}" if child else ""
        return (
            f"PID 1 is a shell ({pid1}) with no SIGTERM trap{running}: the signal is neither handled nor "
            "forwarded (a shell-form ENTRYPOINT, or a script without `exec` or `trap`). If it wraps a program, "
            'use an exec-form ENTRYPOINT ["prog", "arg"] or `exec prog "$@"` and handle SIGTERM in the program; '
            "if the script is the trainer, `trap` TERM to save the model and exit, running long commands in the "
            "background followed by `wait` so the trap fires at once."
        )
    if pid1_sigterm in ("default", "ignored"):
        how = "ignores SIGTERM explicitly" if pid1_sigterm == "ignored" else "has no SIGTERM handler"
        return (
            f"PID 1 ({pid1 or 'unknown'}) {how}; the kernel does not apply SIGTERM's default action to PID 1, so "
            f"the signal was ignored and the container ran until SIGKILL{short_grace}. Install a SIGTERM handler "
            "that saves the model to /opt/ml/model and exits (Python: signal.signal(signal.SIGTERM, handler))."
        )
    said = f" (last line after SIGTERM: {logs_after_sigterm[-1].strip()[:120]!r})" if logs_after_sigterm else ""
    return (
        f"PID 1 ({pid1 or 'unknown'}) handles SIGTERM{said}, but was still running {grace_s:g} s later"
        f"{short_grace}: the handler took longer than the grace period. Save the model and exit promptly in the "
        "handler; leave long work (final evaluation, uploads) out of it."
    )
