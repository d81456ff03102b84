"""What an index and `pip show` display: URLs, author, a License field older pip reads, a user-facing description."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from ..helpers import REPO


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is in the standard library from Python 3.11")
    import tomllib

    data: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return data


def test_the_index_shows_urls_author_license_and_platform(project: dict[str, Any]) -> None:
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(project["urls"])
    assert all(url.startswith("https://github.com/") for url in project["urls"].values())
    assert project["authors"][0]["name"]
    assert project["license"] == {"text": "Apache-2.0"}, "a License field: pip < 24 shows no License-Expression"
    assert "License :: OSI Approved :: Apache Software License" in project["classifiers"]
    assert "Operating System :: POSIX :: Linux" in project["classifiers"]


def test_the_long_description_starts_with_what_the_plugin_does(project: dict[str, Any]) -> None:
    readme = project["readme"]
    assert readme["content-type"] == "text/markdown"
    text = (REPO / readme["file"]).read_text()
    prose = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert prose[0].startswith("A pytest plugin that proves a SageMaker **training** image")
    first_block = text.index("```")
    assert "pip install -e" not in text, "no contributor commands"
    assert "git+https://github.com/" in text[first_block:], "it says how to install what is not on PyPI"
