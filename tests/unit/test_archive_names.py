"""How members of a copy out of a container map below the destination, for both engines' archive shapes."""

from __future__ import annotations

import pytest

from pytest_sagemaker_contract.platform.data_path import _strip_top


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model", None),  # Docker: the directory itself
        ("model/", None),
        ("model/a.json", "a.json"),
        ("model/sub/x", "sub/x"),
        ("model/model/x", "model/x"),
        ("", None),  # Podman 4.3: the directory itself, then members from the root
        ("/a.json", "a.json"),
        ("/sub/x", "sub/x"),
        ("/model/x", "model/x"),
        ("model/../etc/passwd", None),
        ("/../x", None),
    ],
)
def test_members_land_below_the_destination(name: str, expected: str | None) -> None:
    assert _strip_top(name, "model") == expected
