"""The option parsers of settings.py, called directly through the `OPTIONS` table: what each accepts and
returns, and the one usage-error line (naming the flag, the value and the fix) for what it refuses."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sagemaker_contract.jobs import DEFAULT_INSTANCE_TYPE
from pytest_sagemaker_contract.settings import OPTIONS, Option

BY_NAME = {opt.name: opt for opt in OPTIONS}
MAX_SECONDS = 28 * 24 * 3600


def parse(name: str, value: Any) -> Any:
    opt = BY_NAME[name]
    return opt.parse(opt, value)


def refused(name: str, value: Any) -> str:
    """The usage error's text for `value`, which must be one line starting with the option's flag."""
    with pytest.raises(pytest.UsageError) as excinfo:
        parse(name, value)
    message = str(excinfo.value)
    assert message.startswith(BY_NAME[name].flag), message
    assert "\n" not in message
    return message


def test_the_flag_is_the_ini_key_with_dashes() -> None:
    assert Option("sm_stop_on_log", "stop_on_log", "help").flag == "--sm-stop-on-log"
    assert BY_NAME["sm_hyperparameter_value_limit"].flag == "--sm-hyperparameter-value-limit"


# -- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sm_timeout", "sm_stop_after", "sm_grace"])
@pytest.mark.parametrize(("raw", "seconds"), [("1.5", 1.5), (" 7 ", 7.0), (30, 30.0), (str(MAX_SECONDS), MAX_SECONDS)])
def test_seconds_accepts_positive_numbers_up_to_28_days(name: str, raw: Any, seconds: float) -> None:
    assert parse(name, raw) == seconds


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("soon", "'soon': expected a number of seconds"),
        ("", "'': expected a number of seconds"),
        ("nan", "nan: must be a positive, finite number of seconds"),
        ("inf", "inf: must be a positive, finite number of seconds"),
        ("0", "0: must be a positive, finite number of seconds"),
        ("-5", "-5: must be a positive, finite number of seconds"),
        (str(MAX_SECONDS + 1), f"at most {MAX_SECONDS} s (28 days"),
    ],
)
def test_seconds_refuses_what_is_not_a_run_length(raw: str, fragment: str) -> None:
    assert fragment in refused("sm_timeout", raw)


@given(st.floats(min_value=1e-6, max_value=MAX_SECONDS, allow_nan=False, allow_infinity=False))
def test_seconds_reads_back_any_value_it_accepts(seconds: float) -> None:
    assert parse("sm_grace", repr(seconds)) == seconds


@given(st.floats().filter(lambda x: not (0 < x <= MAX_SECONDS)))
def test_seconds_refuses_every_value_outside_the_range(seconds: float) -> None:
    message = refused("sm_stop_after", repr(seconds))
    out_of_reach = not math.isfinite(seconds) or seconds <= 0  # inf, nan, zero and below
    assert ("positive, finite" if out_of_reach else "at most") in message


@pytest.mark.parametrize(
    ("name", "low", "high", "unit"),
    [
        ("sm_instance_count", 1, 20, "hosts"),
        ("sm_max_hosts", 1, 1000, "hosts"),
        ("sm_hyperparameter_value_limit", 1, 2500, "characters"),
        ("sm_parallel", 1, 64, "checks"),
    ],
)
def test_whole_numbers_hold_their_bounds(name: str, low: int, high: int, unit: str) -> None:
    assert parse(name, str(low)) == low
    assert parse(name, f" {high} ") == high
    assert parse(name, high) == high
    assert refused(name, str(low - 1)).endswith(f"{low - 1}: between {low} and {high} {unit}")
    assert refused(name, str(high + 1)).endswith(f"{high + 1}: between {low} and {high} {unit}")
    assert refused(name, "2.5").endswith(f"'2.5': expected a whole number of {unit}")
    assert refused(name, "many").endswith(f"'many': expected a whole number of {unit}")


# -- words from a fixed set ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("sm_gpus", " ALL ", "all"),
        ("sm_gpus", "devices", "devices"),
        ("sm_data_path", "Engine", "engine"),
        ("sm_data_path", " auto", "auto"),
        ("sm_resources", "ON", True),
        ("sm_resources", " off ", False),
        ("sm_input_modes", "File, Pipe,File", ["File", "Pipe"]),
        ("sm_input_modes", "FastFile", ["FastFile"]),
        ("sm_aws_region", "eu-west-1", ("eu-west-1", True)),
        ("sm_aws_region", "us-gov-west-1", ("us-gov-west-1", True)),
        ("sm_aws_region", "None", ("us-east-1", False)),
    ],
)
def test_words_are_read_case_and_space_insensitively_where_the_api_allows(name: str, raw: str, value: Any) -> None:
    assert parse(name, raw) == value


@pytest.mark.parametrize(
    ("name", "raw", "fragment"),
    [
        ("sm_gpus", "cuda", "cuda: expected one of auto, "),
        ("sm_data_path", "nfs", "nfs: expected auto, bind or engine"),
        ("sm_resources", "yes", "yes: expected on or off"),
        ("sm_input_modes", "file", "file: expected a comma-separated subset of File,FastFile,Pipe"),
        ("sm_input_modes", " , ", "expected a comma-separated subset"),
        ("sm_aws_region", "EU", "'EU': expected a region like us-east-1, or none"),
        ("sm_aws_region", "us-east-1a", "expected a region like us-east-1"),
    ],
)
def test_words_outside_the_set_are_refused_naming_the_set(name: str, raw: str, fragment: str) -> None:
    assert fragment in refused(name, raw)


def test_instance_type_is_one_of_the_training_types_with_close_ones_suggested() -> None:
    assert parse("sm_instance_type", "ml.p3.2xlarge") == "ml.p3.2xlarge"
    family = refused("sm_instance_type", "ml.m5.huge")
    assert "ml.m5.huge: not a SageMaker training instance type (e.g. ml.m5." in family
    assert family.count("ml.m5.") <= 6  # at most five suggestions and the value itself
    assert refused("sm_instance_type", "gpu").endswith(f"(e.g. {DEFAULT_INSTANCE_TYPE})")


# -- free text ----------------------------------------------------------------------------------------


def test_regexes_must_compile() -> None:
    assert parse("sm_stop_on_log", r"^epoch \d+") == r"^epoch \d+"
    assert "'(': not a valid regular expression (" in refused("sm_resume_log", "(")


def test_a_gpu_probe_command_must_say_something() -> None:
    assert parse("sm_gpu_probe", "nvidia-smi -L") == "nvidia-smi -L"
    assert "empty command" in refused("sm_gpu_probe", "  ")


def test_images_are_stripped_deduplicated_in_order_and_never_empty() -> None:
    assert parse("sm_image", [" b:1 ", "a:2", "b:1", ""]) == ["b:1", "a:2"]
    assert "empty image name" in refused("sm_image", ["", "  "])


def test_key_value_pairs_split_at_the_first_equals_sign() -> None:
    assert parse("sm_hyperparameter", ["lr=0.1", "expr=a=b", "empty="]) == {"lr": "0.1", "expr": "a=b", "empty": ""}
    assert "'=3': expected KEY=VALUE, e.g. --sm-hyperparameter epochs=3" in refused("sm_hyperparameter", ["=3"])
    assert "e.g. --sm-sigterm-hyperparameter epochs=1000" in refused("sm_sigterm_hyperparameter", ["x"])


def test_environment_keys_follow_the_api_pattern() -> None:
    assert parse("sm_env", ["_A1=x", "B="]) == {"_A1": "x", "B": ""}
    assert "1BAD=...: Environment keys must match" in refused("sm_env", ["OK=1", "1BAD=x"])
    assert "'NOVALUE': expected KEY=VALUE" in refused("sm_env", ["NOVALUE"])


def test_expected_model_globs_are_taken_as_given() -> None:
    assert parse("sm_expect_model", ("model.json", "*.pt")) == ["model.json", "*.pt"]


# -- files --------------------------------------------------------------------------------------------


def test_channels_map_names_to_existing_files_or_directories(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("1\n")
    channels = parse("sm_channel", [f"train={tmp_path}", f"test={tmp_path / 'one.csv'}"])
    assert channels == {"train": tmp_path, "test": tmp_path / "one.csv"}


def test_a_channel_path_with_a_tilde_is_the_users_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse("sm_channel", ["train=~"]) == {"train": tmp_path}


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["train"], "'train': expected NAME=VALUE, e.g. --sm-channel train=./data"),
        (["train="], "train=: no path; e.g. --sm-channel train=./data"),
        (["bad/name=."], "bad/name=...: 'bad/name' is not a channel name"),
        (["train=.", "train=.."], "--sm-channel train=. and --sm-channel train=..: channel 'train' given twice"),
        (["train={tmp}/missing"], "{tmp}/missing does not exist"),
        (["train={tmp}/fifo"], "is a FIFO (named pipe); a channel is a regular file or a directory"),
    ],
)
def test_channels_refuse_what_cannot_be_staged(tmp_path: Path, values: list[str], fragment: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    values = [v.replace("{tmp}", str(tmp_path)) for v in values]
    assert fragment.replace("{tmp}", str(tmp_path)) in refused("sm_channel", values)


def test_a_job_file_is_read_and_checked_as_aws_would(tmp_path: Path) -> None:
    job = {
        "TrainingJobName": "j",
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert parse("sm_job", str(path)) == (path, job)  # no TrainingImage needed: the image is the one under test
    path.write_text(json.dumps({**job, "RoleArn": 5}))
    assert "invalid CreateTrainingJob request" in refused("sm_job", str(path))
    assert "does not exist" in refused("sm_job", str(tmp_path / "none.json"))


@pytest.mark.parametrize("name", ["sm_report", "sm_html"])
def test_a_report_path_must_be_writable_before_the_run(tmp_path: Path, name: str) -> None:
    assert parse(name, str(tmp_path / "r.json")) == tmp_path / "r.json"
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing behind
    assert "is a directory; name a file" in refused(name, str(tmp_path))
    assert f"directory {tmp_path / 'no'} does not exist" in refused(name, str(tmp_path / "no" / "r.json"))


def test_every_option_that_takes_a_value_is_tested_here() -> None:
    """A new option comes with its parser's tests in this file (flags take no value: nothing to parse)."""
    source = Path(__file__).read_text()
    untested = [opt.name for opt in OPTIONS if opt.kind != "bool" and f'"{opt.name}"' not in source]
    assert untested == []
