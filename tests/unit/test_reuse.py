"""--sm-reuse's key and what it keeps: pure functions, no Docker."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_sagemaker_contract.contract.suite import CheckNote
from pytest_sagemaker_contract.reuse import (
    OUTPUT_ONLY,
    Verdict,
    VerdictCache,
    channel_fingerprint,
    effective_request,
    plugin_fingerprint,
    reused_property,
    verdict_key,
    verdict_options,
    worth_keeping,
)
from pytest_sagemaker_contract.session import ContractSession
from pytest_sagemaker_contract.settings import OPTIONS, Settings

IMAGE_ID = "sha256:" + "a" * 64


def _key(**changes: Any) -> str:
    parts: dict[str, Any] = {
        "plugin": "0.1.0+abc",
        "image_id": IMAGE_ID,
        "request": {"HyperParameters": {"epochs": "1"}},
        "channels": {"train": "d1"},
        "options": {"grace_s": 120.0},
        "engine": {"data_path": "bind"},
        "check_id": "SM-RUN-DEFAULT",
    }
    parts.update(changes)
    return verdict_key(**parts)


def test_the_key_is_stable_and_changes_with_every_part() -> None:
    assert _key() == _key()
    assert _key(request={"HyperParameters": {"epochs": "1"}}) == _key(), "equal content, equal key"
    variants = [
        _key(plugin="0.1.1+abc"),
        _key(image_id="sha256:" + "b" * 64),
        _key(request={"HyperParameters": {"epochs": "2"}}),
        _key(channels={"train": "d2"}),
        _key(channels={"train": "d1", "test": "d3"}),
        _key(options={"grace_s": 30.0}),
        _key(engine={"data_path": "engine"}),
        _key(check_id="SM-SIG-TERM"),
    ]
    assert len(set(variants)) == len(variants)
    assert _key() not in variants


def test_the_key_does_not_depend_on_mapping_order() -> None:
    a = _key(request={"A": 1, "B": {"x": 1, "y": 2}})
    b = _key(request={"B": {"y": 2, "x": 1}, "A": 1})
    assert a == b


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_one_byte_changes_the_channel_fingerprint_even_with_size_and_mtime_kept(tmp_path: Path) -> None:
    channel = _tree(tmp_path / "train", {"a.csv": b"1,2,3\n" * 1000, "sub/b.csv": b"x"})
    before = channel_fingerprint(channel)
    target = channel / "a.csv"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[2500] ^= 0x01
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size
    assert target.stat().st_mtime_ns == stat.st_mtime_ns
    assert channel_fingerprint(channel) != before


def test_the_channel_fingerprint_sees_names_modes_and_single_files(tmp_path: Path) -> None:
    channel = _tree(tmp_path / "train", {"a.csv": b"abc"})
    before = channel_fingerprint(channel)
    (channel / "a.csv").rename(channel / "b.csv")
    renamed = channel_fingerprint(channel)
    (channel / "b.csv").chmod(0o755)
    chmodded = channel_fingerprint(channel)
    assert len({before, renamed, chmodded}) == 3
    single = tmp_path / "one.bin"
    single.write_bytes(b"abc")
    first = channel_fingerprint(single)
    single.write_bytes(b"abd")
    assert channel_fingerprint(single) != first


def test_the_channel_fingerprint_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    files = {f"f{i}.txt": str(i).encode() for i in range(20)}
    a = _tree(tmp_path / "a", files)
    b = _tree(tmp_path / "b", dict(reversed(list(files.items()))))
    assert channel_fingerprint(a) == channel_fingerprint(b)


def test_verdict_options_hold_every_option_but_the_output_ones() -> None:
    names = {opt.name for opt in OPTIONS}
    assert names >= OUTPUT_ONLY, "OUTPUT_ONLY names real options"
    options = verdict_options(Settings())
    for opt in OPTIONS:
        attrs = opt.attr if isinstance(opt.attr, tuple) else (opt.attr,)
        for attr in attrs:
            kept = attr in options
            expected = opt.name not in OUTPUT_ONLY and opt.name != "sm_channel" and attr != "job_file"
            assert kept == expected, (opt.name, attr)


def test_output_options_do_not_change_the_verdict_options_and_the_others_do(tmp_path: Path) -> None:
    base = verdict_options(Settings())
    outputs = Settings(report=tmp_path / "r.json", html=tmp_path / "r.html", keep=True, parallel=3, reuse=True)
    assert verdict_options(outputs) == base
    for changed in (
        Settings(grace_s=30.0),
        Settings(strict=True),
        Settings(hyperparameters={"epochs": "2"}),
        Settings(sigterm_hyperparameters={"epochs": "1000"}),
        Settings(job_request={"HyperParameters": {"a": "1"}}),
        Settings(stop_on_log="^epoch 2"),
        Settings(data_path="engine"),
    ):
        assert verdict_options(changed) != base, changed


def test_the_effective_request_carries_the_image_id_and_the_overrides() -> None:
    settings = Settings(
        job_request={"HyperParameters": {"epochs": "1", "lr": "0.1"}},
        hyperparameters={"epochs": "3"},
        environment={"MODE": "x"},
        channels={"train": Path("/data")},
    )
    request = effective_request(settings, IMAGE_ID, "ml.m5.large")
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE_ID
    assert request["HyperParameters"] == {"epochs": "3", "lr": "0.1"}
    assert request["Environment"] == {"MODE": "x"}
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train"]
    assert request == effective_request(settings, IMAGE_ID, "ml.m5.large"), "no per-session names in it"


@pytest.mark.parametrize(
    ("outcome", "skip_kind", "by_check", "environment", "kept"),
    [
        ("passed", "", False, False, True),
        ("failed", "", True, False, True),
        ("failed", "", False, False, False),  # a crash or an outside error is no verdict
        ("failed", "", True, True, False),  # an engine fault, or S3 out of the containers' reach
        ("failed", "untested", True, False, False),  # --sm-strict's failure of an untested clause
        ("skipped", "structural", False, False, True),
        ("skipped", "untested", False, False, False),
        ("passed", "", False, True, False),
    ],
)
def test_what_is_kept(outcome: str, skip_kind: str, by_check: bool, environment: bool, kept: bool) -> None:
    assert worth_keeping(outcome, skip_kind, by_check, environment) is kept


def _note() -> CheckNote:
    note = CheckNote("SM-SIG-TERM", "§7", "algo:ci", message="exited 0.2 s after SIGTERM", image_id=IMAGE_ID)
    note.log_tail = "epoch 1\nsaved"
    note.log_path = "/tmp/x.log"
    note.warnings.append("a warning")
    note.sections.append(("process tree at SIGTERM", "1 sh"))
    note.duration_s = 9.25
    return note


def test_a_verdict_survives_the_cache_and_replays_the_same_note() -> None:
    props = [("sm_metrics", '{"loss": [1.0]}'), ("sm_timeline", "[]"), ("sm_check_id", "SM-SIG-TERM")]
    verdict = Verdict.of(_note(), "passed", "", props, run_id="r1")
    back = Verdict.from_json(asdict(verdict))
    assert back == verdict
    note = CheckNote("SM-SIG-TERM", "§7", "algo:ci")
    user_properties: list[tuple[str, object]] = []
    assert back.replay(note, user_properties) is None
    assert (note.message, note.log_tail, note.warnings, note.sections) == (
        "exited 0.2 s after SIGTERM",
        "epoch 1\nsaved",
        ["a warning"],
        [("process tree at SIGTERM", "1 sh")],
    )
    assert note.duration_s == 0.0, "nothing ran this time"
    assert note.log_path == "", "the deciding session's log file is gone: no pointer to it"
    assert user_properties == [("sm_metrics", '{"loss": [1.0]}')]
    name, value = reused_property(back)
    assert name == "sm_reused"
    assert json.loads(str(value)) == {"at": verdict.at, "run_id": "r1", "duration_s": 9.25}


def test_a_replay_points_at_the_full_log_while_it_exists(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("epoch 1\n")
    verdict = replace(Verdict.of(_note(), "passed", "", [], "r1"), log_path=str(log))
    note = CheckNote("SM-SIG-TERM", "§7", "algo:ci")
    verdict.replay(note, [])
    assert note.log_path == str(log)


def test_failures_and_skips_replay_as_their_outcome() -> None:
    failed = Verdict.of(_note(), "failed", "SM-SIG-TERM (§7): killed", [], "r1")
    error = failed.replay(CheckNote("SM-SIG-TERM", "§7", "x"), [])
    assert isinstance(error, pytest.fail.Exception)
    assert error.msg == "SM-SIG-TERM (§7): killed"
    skipped = Verdict.of(_note(), "skipped", "SM-GPU-VISIBLE: no GPUs", [], "r1")
    assert isinstance(skipped.replay(CheckNote("SM-GPU-VISIBLE", "§9", "x"), []), pytest.skip.Exception)


@pytest.mark.parametrize("data", [None, [], {"outcome": "maybe"}, {"outcome": "passed", "unknown": 1}, "x"])
def test_a_malformed_cache_entry_is_a_miss(data: object) -> None:
    assert Verdict.from_json(data) is None


def test_the_plugin_fingerprint_names_the_version() -> None:
    assert plugin_fingerprint().startswith("0.")
    assert "+" in plugin_fingerprint()


def test_reuse_without_pytests_cache_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sm-reuse", "--sm-image", "algo:ci")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sm-reuse: pytest's cache is off (-p no:cacheprovider)*"])


class DictCache:
    """pytest's cache, as far as VerdictCache uses it: JSON values by key."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: object) -> None:
        self.values[key] = json.dumps(value)


def _parts(**changes: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "plugin": "0.1.0+abc",
        "image": IMAGE_ID,
        "request": {"HyperParameters": {"epochs": "1"}},
        "channels": {},
        "options": {"strict": False},
        "engine": {"data_path": "bind"},
    }
    return parts | changes


def _verdicts(cache: DictCache, parts: dict[str, Any] | None) -> VerdictCache:
    """A worker's VerdictCache: its keys come from the controller, so it never asks the engine (no session)."""
    return VerdictCache(cache, cast(ContractSession, None), {"algo:ci": parts})


def test_a_kept_verdict_is_found_under_the_same_key_only() -> None:
    cache = DictCache()
    first = _verdicts(cache, _parts())
    assert first.lookup("algo:ci", "SM-SIG-TERM") is None
    verdict = Verdict.of(_note(), "passed", "", [], "r1")
    assert first.keep("algo:ci", "SM-SIG-TERM", verdict)
    assert _verdicts(cache, _parts()).lookup("algo:ci", "SM-SIG-TERM") == verdict
    assert _verdicts(cache, _parts()).lookup("algo:ci", "SM-RUN-DEFAULT") is None, "keyed per check"
    changed = _parts(request={"HyperParameters": {"epochs": "2"}})
    assert _verdicts(cache, changed).lookup("algo:ci", "SM-SIG-TERM") is None
    assert _verdicts(cache, _parts(options={"strict": True})).lookup("algo:ci", "SM-SIG-TERM") is None


def test_nothing_is_kept_for_an_unkeyed_image_or_one_that_changed_during_the_run() -> None:
    cache = DictCache()
    verdict = Verdict.of(_note(), "passed", "", [], "r1")
    assert not _verdicts(cache, None).keep("algo:ci", "SM-SIG-TERM", verdict)
    assert _verdicts(cache, None).lookup("algo:ci", "SM-SIG-TERM") is None
    moved = _verdicts(cache, _parts(image="sha256:" + "c" * 64))
    assert not moved.keep("algo:ci", "SM-SIG-TERM", verdict), "the check ran another image than the key names"
    assert cache.values == {}
