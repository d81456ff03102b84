"""The SIGTERM diagnosis for images on AWS's sagemaker-training toolkit, from recorded process trees.

RECORDED is `docker top` at SIGTERM of examples/toolkit-script-mode (sagemaker-training 5.1.4 in a venv):
PID 1 is the toolkit's `train` console script, its child the user's entry point as the toolkit starts it.
"""

from __future__ import annotations

from pytest_sagemaker_contract.diagnosis import diagnose_kill, is_toolkit_tree


def tree(*rows: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"PID": pid, "PPID": ppid, "COMMAND": cmd} for pid, ppid, cmd in rows]


RECORDED = tree(
    ("18021", "17999", "/opt/venv/bin/python3 /opt/venv/bin/train"),
    ("18068", "18021", "/opt/venv/bin/python3 -- train.py --epochs 1000 --learning_rate 0.1 --seconds_per_epoch 0.2"),
)
SHELL_ENTRY_POINT = tree(
    ("200", "190", "/usr/local/bin/python3.10 /usr/local/bin/train"),
    ("230", "200", "/bin/sh -c ./train.sh --epochs 3"),
    ("231", "230", "/bin/sh ./train.sh --epochs 3"),
)
MODULE_ENTRY_POINT = tree(
    ("300", "290", "/usr/bin/python3 /usr/local/bin/train"),
    ("330", "300", "/usr/bin/python3 -m my_package --epochs 3"),
)


def test_recorded_toolkit_tree() -> None:
    assert is_toolkit_tree(RECORDED)
    text = diagnose_kill(tree=RECORDED, pid1_sigterm="default", logs_after_sigterm=["epoch 7/1000"], grace_s=10)
    assert text.startswith(
        "PID 1 is the sagemaker-training toolkit's `train` (/opt/venv/bin/python3 /opt/venv/bin/train), which has "
        "no SIGTERM handler and started the user's entry point (/opt/venv/bin/python3 -- train.py --epochs 1000"
    )
    assert "does not forward SIGTERM to the entry point (aws/sagemaker-training-toolkit#125, #173)" in text
    assert "the entry point's own SIGTERM handler never runs" in text
    assert "(this run used --sm-grace 10; SageMaker gives 120 s)" in text
    assert "exec-form ENTRYPOINT wrapper that starts `train`, forwards SIGTERM" in text
    assert "subprocess.Popen(['train'])" in text
    assert "examples/" not in text  # the user's machine has no checkout of this repository
    assert "often enough that a SIGKILL loses little" in text


def test_any_entry_point_kind_and_disposition() -> None:
    for recorded in (SHELL_ENTRY_POINT, MODULE_ENTRY_POINT):
        assert is_toolkit_tree(recorded)
        for disposition in ("default", "caught", None):
            text = diagnose_kill(tree=recorded, pid1_sigterm=disposition, logs_after_sigterm=[], grace_s=120)
            assert "does not forward SIGTERM" in text
            assert "--sm-grace" not in text
    assert "(/bin/sh -c ./train.sh --epochs 3)" in diagnose_kill(
        tree=SHELL_ENTRY_POINT, pid1_sigterm="default", logs_after_sigterm=[], grace_s=120
    )


def test_toolkit_seen_only_in_the_tree_before_sigkill() -> None:
    text = diagnose_kill(tree=[], pid1_sigterm="default", logs_after_sigterm=[], grace_s=120, tree_at_kill=RECORDED)
    assert "sagemaker-training toolkit's `train`" in text


def test_not_the_toolkit() -> None:
    own_train_script = tree(("100", "90", "/bin/sh /usr/local/bin/train"), ("120", "100", "sleep 100"))
    assert not is_toolkit_tree(own_train_script)
    assert "PID 1 is a shell" in diagnose_kill(
        tree=own_train_script, pid1_sigterm="default", logs_after_sigterm=[], grace_s=120
    )
    lone_python_train = tree(("100", "90", "python3 /usr/local/bin/train"))
    assert not is_toolkit_tree(lone_python_train)
    assert "has no SIGTERM handler" in diagnose_kill(
        tree=lone_python_train, pid1_sigterm="default", logs_after_sigterm=[], grace_s=120
    )
    wrapper = tree(
        ("100", "90", "python3 /usr/local/bin/forward-sigterm.py train"),
        ("110", "100", "/opt/venv/bin/python3 /opt/venv/bin/train"),
        ("120", "110", "/opt/venv/bin/python3 -- train.py --epochs 1000"),
    )
    assert not is_toolkit_tree(wrapper)
    assert not is_toolkit_tree(tree(("100", "90", "python3 /opt/program/train.py train"), ("110", "100", "x")))
