"""SM-METRICS' rule: each MetricDefinitions regex applied to the log lines as SageMaker does (no Docker)."""

from __future__ import annotations

from types import SimpleNamespace

from pytest_sagemaker_contract.contract.metrics import cloudwatch_text, log_lines, match_metrics, metric_definitions

LOG = [
    "read train.csv",
    "epoch 1/3 inertia=12.5",
    "epoch 2/3 inertia=7.25 Train_error=0.138318; Valid_error=0.324557;",
    "epoch 3/3 inertia=1e-3",
    "training complete",
]


def test_first_capture_group_of_every_matching_line_in_order() -> None:
    (inertia,) = match_metrics([("inertia", r"inertia=([0-9.eE+-]+)")], LOG)
    assert inertia.problem is None
    assert inertia.values == [12.5, 7.25, 0.001]


def test_the_documented_example() -> None:
    train, valid = match_metrics(
        [("train:error", "Train_error=(.*?);"), ("validation:error", "Valid_error=(.*?);")], LOG
    )
    assert (train.values, valid.values) == ([0.138318], [0.324557])


def test_a_regex_that_never_matches_shows_the_lines_naming_the_metric() -> None:
    (m,) = match_metrics([("Inertia", r"inertia: ([0-9.]+)")], LOG)
    assert m.values == []
    assert m.problem is not None
    assert "'inertia: ([0-9.]+)' matched no log line" in m.problem
    assert "epoch 1/3 inertia=12.5" in m.problem
    assert "epoch 3/3 inertia=1e-3" in m.problem


def test_at_most_five_lines_are_shown() -> None:
    (m,) = match_metrics([("loss", r"loss: (\d+)")], [f"loss={i}" for i in range(9)])
    assert m.problem is not None
    assert "loss=4" in m.problem
    assert "loss=5" not in m.problem


def test_no_line_mentions_the_metric() -> None:
    (m,) = match_metrics([("accuracy", r"acc=([0-9.]+)")], LOG)
    assert m.problem is not None
    assert "no log line mentions 'accuracy' (case-insensitive)" in m.problem


def test_a_capture_that_is_not_a_number_fails() -> None:
    (m,) = match_metrics([("inertia", r"epoch (\S+) inertia")], LOG)
    assert m.problem is not None
    assert "captured '1/3', which is not a number" in m.problem


def test_nan_is_not_a_number_sagemaker_can_publish() -> None:
    (m,) = match_metrics([("loss", r"loss=(\S+)")], ["loss=0.5", "loss=nan"])
    assert m.values == [0.5]
    assert m.problem is not None
    assert "'nan'" in m.problem


def test_regex_without_group_or_invalid() -> None:
    no_group, invalid = match_metrics([("a", "inertia=[0-9.]+"), ("b", "inertia=([0-9.]+")], LOG)
    assert no_group.problem is not None
    assert "no capture group" in no_group.problem
    assert invalid.problem is not None
    assert "not a valid regular expression" in invalid.problem


def test_definitions_from_the_request() -> None:
    request = {"AlgorithmSpecification": {"MetricDefinitions": [{"Name": "loss", "Regex": "loss=(.*)"}]}}
    assert metric_definitions(request) == [("loss", "loss=(.*)")]
    assert metric_definitions({"AlgorithmSpecification": {}}) == []
    assert metric_definitions(None) == []


def test_the_full_log_file_wins_over_the_truncated_text(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "job.log"
    path.write_text("line 1 loss=1\nline 2 loss=2\n")
    assert log_lines(SimpleNamespace(log_path=path, logs="[truncated]\nline 2 loss=2")) == [
        "line 1 loss=1",
        "line 2 loss=2",
    ]
    assert log_lines(SimpleNamespace(log_path=None, logs="a\nb")) == ["a", "b"]


# -- the log as CloudWatch stores it (contract §10) ---------------------------------------------

XGB_LINE = "[3]\ttrain-auc:0.91\tvalidation-auc:0.875"


def test_control_characters_are_escaped_as_cloudwatch_stores_them() -> None:
    assert cloudwatch_text(XGB_LINE) == "[3]#011train-auc:0.91#011validation-auc:0.875"
    assert cloudwatch_text("10%\r20%\x1b[0m\x7f") == "10%#01520%#033[0m#177"
    assert cloudwatch_text("plain text, no controls") == "plain text, no controls"


def test_a_regex_written_for_cloudwatch_text_matches() -> None:
    # The form AWS's own XGBoost container uses (aws/sagemaker-xgboost-container, metrics.py).
    regex = r".*\[[0-9]+\].*#011validation-auc:([-+]?[0-9]*\.?[0-9]+)"
    (auc,) = match_metrics([("validation:auc", regex)], [XGB_LINE])
    assert (auc.problem, auc.values) == (None, [0.875])


def test_a_regex_that_needs_a_raw_tab_never_matches_and_says_why() -> None:
    for regex in (r"\ttrain-auc:([0-9.]+)", "\ttrain-auc:([0-9.]+)"):
        (auc,) = match_metrics([("train-auc", regex)], [XGB_LINE])
        assert auc.values == []
        assert auc.problem is not None
        assert "matched no log line" in auc.problem
        assert "a tab is the text #011; write #011 instead of \\t" in auc.problem
        assert "[3]#011train-auc:0.91" in auc.problem  # the line shown as SageMaker sees it


def test_a_carriage_return_is_no_line_break_in_the_spooled_log(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "job.log"
    path.write_bytes(b"10%\r100% loss=0.5\n")
    assert log_lines(SimpleNamespace(log_path=path, logs="")) == ["10%\r100% loss=0.5"]
    (loss,) = match_metrics(
        [("loss", r"^[0-9]+%#015[0-9]+% loss=([0-9.]+)")], log_lines(SimpleNamespace(log_path=path))
    )
    assert loss.values == [0.5]
