"""One definition each: the option table, the override keywords (factory, marker, README)."""

from __future__ import annotations

import re

import pytest

from pytest_sagemaker_contract.fixtures import JOB_MARKER_KEYWORDS
from pytest_sagemaker_contract.jobs import OVERRIDE_KEYWORDS, RequestOverrides, with_overrides
from pytest_sagemaker_contract.settings import OPTIONS, Settings

from ..helpers import REPO

README = REPO / "README.md"


def _readme_override_rows() -> list[str]:
    text = README.read_text()
    section = text.split("### training_job overrides", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)


def test_readme_override_table_matches_the_code() -> None:
    rows = _readme_override_rows()
    assert sorted(rows) == sorted(OVERRIDE_KEYWORDS), "README's '### training_job overrides' table is out of date"
    assert len(rows) == len(set(rows))


def test_marker_keywords_are_the_image_and_the_overrides() -> None:
    assert JOB_MARKER_KEYWORDS[0] == "image"
    assert JOB_MARKER_KEYWORDS[1:] == OVERRIDE_KEYWORDS


def test_request_overrides_are_a_subset_of_the_job_overrides() -> None:
    assert set(RequestOverrides.__annotations__) < set(OVERRIDE_KEYWORDS)


def test_with_overrides_rejects_a_keyword_it_does_not_know() -> None:
    with pytest.raises(TypeError, match="max_runtime_s"):
        with_overrides(None, name="n", image="i", max_runtime_s=5)  # type: ignore[call-arg]


def test_every_option_fills_a_settings_attribute_of_its_own() -> None:
    fields = set(Settings.__dataclass_fields__)
    attrs = [a for opt in OPTIONS for a in ((opt.attr,) if isinstance(opt.attr, str) else opt.attr)]
    assert len(attrs) == len(set(attrs))
    assert set(attrs) <= fields
    assert all(opt.name.startswith("sm_") for opt in OPTIONS)


def test_every_option_is_a_flag_and_an_ini_key_of_pytest(pytester: pytest.Pytester) -> None:
    """What pytest registered (its --help), not what the table says it would register."""
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--help")
    flags = set(re.findall(r"^\s+(--sm-[a-z0-9-]+)", result.stdout.str(), flags=re.MULTILINE))
    ini_keys = set(re.findall(r"^\s+(sm_[a-z0-9_]+)", result.stdout.str(), flags=re.MULTILINE))
    assert flags == {opt.flag for opt in OPTIONS}
    assert ini_keys == {opt.name for opt in OPTIONS}


def test_readme_lists_every_option() -> None:
    text = README.read_text()
    missing = [opt.flag for opt in OPTIONS if opt.flag not in text]
    assert missing == []
