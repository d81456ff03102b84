"""Why a container did not stop in time after SIGTERM, from what was observed (contract §5).

Pure functions over the process tree (`docker top` at the moment SIGTERM was sent), PID 1's SIGTERM
disposition (/proc/1/status) and the log lines printed after SIGTERM, so each diagnosis can be
unit-tested and a message names the cause and the fix.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .platform.signals import ProcessSignals

__all__ = [
    "SigtermEffect",
    "diagnose_kill",
    "is_toolkit_tree",
    "pid1_command",
    "process_tree_text",
    "signals_text",
    "sigterm_effect",
]

_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"})
_TOOLKIT_MARKERS = ("sagemaker_training", "sagemaker-training", "sagemaker_containers")
_PYTHONS = ("python", "python3")


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


def _argv(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _runs_train_script(command: str) -> bool:
    """`train` itself, or a Python interpreter running a script named `train` (a console script: the toolkit's
    `train=sagemaker_training.cli.train:main`, e.g. `/usr/bin/python3 /usr/local/bin/train`)."""
    argv = _argv(command)
    if not argv:
        return False
    if posixpath.basename(argv[0]) == "train":
        return True
    interpreter = posixpath.basename(argv[0])
    is_python = interpreter.startswith(_PYTHONS) and interpreter.rstrip("0123456789.").endswith("python")
    script = next((a for a in argv[1:] if not a.startswith("-")), "")
    return is_python and posixpath.basename(script) == "train"


def is_toolkit_tree(tree: Sequence[Mapping[str, str]]) -> bool:
    """Whether PID 1 is AWS's sagemaker-training toolkit: its module named on PID 1's command line, or a Python
    `train` console script (how framework images start it) that has started the user's entry point."""
    pid1 = pid1_command(tree)
    if any(marker in pid1 for marker in _TOOLKIT_MARKERS):
        return True
    children = _children(tree)
    if any(marker in " ".join(children) for marker in _TOOLKIT_MARKERS) and _program(pid1) in ("train", *_PYTHONS):
        return True
    return _runs_train_script(pid1) and bool(children) and _program(pid1) not in _SHELLS


def _toolkit_diagnosis(pid1: str, children: Sequence[str], short_grace: str) -> str:
    entry = children[0] if children else ""
    started = f" and started the user's entry point ({entry})" if entry else ""
    return (
        f"PID 1 is the sagemaker-training toolkit's `train` ({pid1}), which has no SIGTERM handler{started}: "
        "it does not forward SIGTERM to the entry point (aws/sagemaker-training-toolkit#125, #173), so the "
        "entry point's own SIGTERM handler never runs, and as PID 1 the toolkit ignores the signal itself; "
        f"SageMaker SIGKILLs such a container at the end of its grace as well{short_grace}. Fixes that work "
        "with the toolkit: make PID 1 an exec-form ENTRYPOINT wrapper that starts `train`, forwards SIGTERM "
        "to the processes it starts and waits for them (about 20 lines of Python: subprocess.Popen(['train']), "
        "a SIGTERM handler that signals the process group, then wait); or write checkpoints (CheckpointConfig, "
        "/opt/ml/checkpoints) "
        "and the model to /opt/ml/model often enough that a SIGKILL loses little."
    )


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
    if is_toolkit_tree(tree):
        return _toolkit_diagnosis(pid1, children, short_grace)
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


@dataclass(frozen=True)
class SigtermEffect:
    """What SIGTERM to PID 1 could do, from the dispositions read just before it was sent.

    `acts` is True when some process catches the signal or dies of it, False when nothing does (the run
    then goes on until it ends by itself or is SIGKILLed), None when the dispositions could not be read.
    """

    acts: bool | None
    evidence: str
    fix: str = ""


def _acts(process: ProcessSignals, children: Mapping[int, list[ProcessSignals]], depth: int = 0) -> bool:
    """Whether SIGTERM delivered to `process` (not PID 1) ends or reaches something."""
    if process.sigterm in ("caught", "default"):
        return True
    if process.sigterm == "blocked" and depth < 8:
        kids = children.get(process.pid, [])
        return not kids or any(_acts(k, children, depth + 1) for k in kids)
    return False


def _short(command: str) -> str:
    line = " ".join(command.split())
    return line if len(line) <= 80 else line[:79] + "…"


def sigterm_effect(signals: Sequence[ProcessSignals]) -> SigtermEffect:
    """Whether SIGTERM sent to the container (to its PID 1, as `docker stop` and SageMaker do) can end the run.

    A namespace's PID 1 is shielded from SIGTERM's default action: without a handler the signal is dropped.
    An init that blocks the signal and waits for it (tini, dumb-init) forwards it to its child, which then
    catches it or dies of it, unless it ignores it.
    """
    pid1 = next((p for p in signals if p.pid == 1), None)
    if pid1 is None or pid1.sigterm is None:
        return SigtermEffect(None, "the container's signal dispositions (/proc/<pid>/status) could not be read")
    who = f"PID 1 ({_short(pid1.command)})"
    children: dict[int, list[ProcessSignals]] = {}
    for p in signals:
        children.setdefault(p.ppid, []).append(p)
    kids = children.get(1, [])
    shell = _program(pid1.command) in _SHELLS or pid1.name in _SHELLS
    if pid1.sigterm == "caught":
        return SigtermEffect(True, f"{who} catches SIGTERM")
    if pid1.sigterm == "blocked":
        if not kids:
            return SigtermEffect(True, f"{who} blocks SIGTERM and takes it with sigwait/signalfd")
        acting = [k for k in kids if _acts(k, children)]
        if acting:
            child = acting[0]
            how = (
                "catches it"
                if child.sigterm == "caught"
                else "dies of it"
                if child.sigterm == "default"
                else "takes it"
            )
            return SigtermEffect(
                True, f"{who} forwards SIGTERM (an init such as tini) to {_short(child.command)}, which {how}"
            )
        child = kids[0]
        return SigtermEffect(
            False,
            f"{who} forwards SIGTERM (an init such as tini) to {_short(child.command)}, which ignores it",
            "don't ignore SIGTERM in the trainer: install a handler that saves the model to /opt/ml/model and exits",
        )
    how = "ignores SIGTERM" if pid1.sigterm == "ignored" else "has no SIGTERM handler"
    if shell:
        running = f", running {_short(kids[0].command)}" if kids else ""
        return SigtermEffect(
            False,
            f"{who} is a shell that {how}{running}; as PID 1 the kernel drops the signal and nothing forwards it",
            "use an exec-form ENTRYPOINT or `exec` the trainer so it is PID 1 and handles SIGTERM itself, or `trap` "
            "TERM in the script (long commands in the background followed by `wait`) to save the model and exit",
        )
    return SigtermEffect(
        False,
        f"{who} {how}; the kernel does not apply SIGTERM's default action to a PID 1, so the signal was dropped",
        "install a SIGTERM handler that saves the model to /opt/ml/model and exits "
        "(Python: signal.signal(signal.SIGTERM, handler))",
    )


def signals_text(signals: Sequence[ProcessSignals]) -> str:
    """The dispositions as a small table for the report."""
    if not signals:
        return "(signal dispositions not read)"
    return "\n".join(f"  {p.pid:>5} {p.ppid:>5}  {p.sigterm or '?':<8} {_short(p.command)}" for p in signals)
