"""The stable API is `pytest_sagemaker_contract.__all__`, documented name by name in README "Public API"."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest_sagemaker_contract

from ..helpers import REPO

README = REPO / "README.md"


def test_every_stable_name_resolves() -> None:
    for name in pytest_sagemaker_contract.__all__:
        assert getattr(pytest_sagemaker_contract, name) is not None, name


def test_readme_public_api_lists_exactly_the_stable_names() -> None:
    section = README.read_text().split("## Public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([A-Za-z_]+)` \|", section, re.MULTILINE))
    assert listed == set(pytest_sagemaker_contract.__all__) - {"__version__"}


def test_the_package_imports_without_pytest() -> None:
    """The platform and the request model are usable outside pytest: the pytest names load on first use."""
    code = (
        "import sys, pytest_sagemaker_contract as p; before = 'pytest' in sys.modules; p.TrainingJobFactory; "
        "print(before, 'pytest' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_names_exported_before_the_trim_still_import() -> None:
    from pytest_sagemaker_contract import Engine, EngineError, ImageUnavailable, S3Server, Timeline
    from pytest_sagemaker_contract.platform import engine, result, s3

    assert (Engine, EngineError, ImageUnavailable) == (engine.Engine, engine.EngineError, engine.ImageUnavailable)
    assert (S3Server, Timeline) == (s3.S3Server, result.Timeline)
    assert not {"Engine", "EngineError", "ImageUnavailable", "S3Server", "Timeline"} & set(
        pytest_sagemaker_contract.__all__
    )


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(pytest_sagemaker_contract, "Suite")
