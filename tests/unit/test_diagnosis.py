"""The SIGTERM diagnoses, from recorded process trees (docker top rows) and PID 1 dispositions."""

from __future__ import annotations

from pytest_sagemaker_contract.diagnosis import diagnose_kill, pid1_command, process_tree_text
from pytest_sagemaker_contract.platform.signals import sigterm_disposition


def tree(*rows: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"PID": pid, "PPID": ppid, "COMMAND": cmd} for pid, ppid, cmd in rows]


SHELL_FORM = tree(("100", "90", "/bin/sh -c python train.py"), ("120", "100", "python train.py"))
TOOLKIT = tree(
    ("100", "90", "/usr/bin/python3 /usr/local/bin/train"),
    ("130", "100", "/usr/bin/python3 -m sagemaker_training.cli.train user_script.py"),
)
PYTHON = tree(("100", "90", "python3 /opt/program/train.py train"))


def test_pid1_is_the_row_whose_parent_is_outside_the_container() -> None:
    assert pid1_command(list(reversed(SHELL_FORM))) == "/bin/sh -c python train.py"
    assert "python train.py" in process_tree_text(SHELL_FORM)
    assert process_tree_text([]) == "(process tree not captured)"


def test_shell_without_trap() -> None:
    text = diagnose_kill(tree=SHELL_FORM, pid1_sigterm="default", logs_after_sigterm=[], grace_s=120)
    assert text.startswith(
        "PID 1 is a shell (/bin/sh -c python train.py) with no SIGTERM trap, running python train.py"
    )
    assert "exec-form ENTRYPOINT" in text


def test_shell_with_trap_and_foreground_child() -> None:
    text = diagnose_kill(tree=SHELL_FORM, pid1_sigterm="caught", logs_after_sigterm=[], grace_s=120)
    assert "runs its trap only after that child exits" in text


def test_toolkit_does_not_forward() -> None:
    text = diagnose_kill(tree=TOOLKIT, pid1_sigterm="caught", logs_after_sigterm=[], grace_s=120)
    assert "sagemaker-training toolkit" in text
    assert "does not forward SIGTERM" in text


def test_no_handler_and_ignored() -> None:
    assert "has no SIGTERM handler" in diagnose_kill(
        tree=PYTHON, pid1_sigterm="default", logs_after_sigterm=[], grace_s=10
    )
    assert "ignores SIGTERM explicitly" in diagnose_kill(
        tree=PYTHON, pid1_sigterm="ignored", logs_after_sigterm=[], grace_s=120
    )
    assert "--sm-grace 10" in diagnose_kill(tree=PYTHON, pid1_sigterm="default", logs_after_sigterm=[], grace_s=10)
    assert "--sm-grace" not in diagnose_kill(tree=PYTHON, pid1_sigterm="default", logs_after_sigterm=[], grace_s=120)


def test_slow_handler_quotes_the_last_line() -> None:
    text = diagnose_kill(tree=PYTHON, pid1_sigterm="caught", logs_after_sigterm=["saving..."], grace_s=120)
    assert "handles SIGTERM (last line after SIGTERM: 'saving...')" in text
    assert "took longer than the grace period" in text


def test_sigterm_disposition_from_proc_status() -> None:
    caught = "Name:\tpython3\nSigIgn:\t0000000001001000\nSigCgt:\t0000000180004002\n"
    assert sigterm_disposition(caught) == "caught"
    ignored = "SigIgn:\t0000000000004000\nSigCgt:\t0000000000000000\n"
    assert sigterm_disposition(ignored) == "ignored"
    assert sigterm_disposition("SigIgn:\t0\nSigCgt:\t0\n") == "default"
    assert sigterm_disposition("Name: x\n") is None


def test_shell_trap_that_runs_but_is_slow() -> None:
    at_sigterm = tree(("100", "90", "/bin/sh /opt/program/train.sh"), ("150", "100", "sleep 1"))
    at_kill = tree(("100", "90", "/bin/sh /opt/program/train.sh"), ("180", "100", "sleep 1"))
    text = diagnose_kill(
        tree=at_sigterm, pid1_sigterm="caught", logs_after_sigterm=["saving"], grace_s=3, tree_at_kill=at_kill
    )
    assert "took longer than the grace period" in text
    same_child = diagnose_kill(
        tree=SHELL_FORM, pid1_sigterm="caught", logs_after_sigterm=[], grace_s=3, tree_at_kill=SHELL_FORM
    )
    assert "runs its trap only after that child exits" in same_child


def test_falls_back_to_the_tree_before_sigkill() -> None:
    text = diagnose_kill(tree=[], pid1_sigterm="default", logs_after_sigterm=[], grace_s=120, tree_at_kill=PYTHON)
    assert "PID 1 (python3 /opt/program/train.py train) has no SIGTERM handler" in text
