"""The one door for untrusted bytes (platform/untrusted.py): names never leave their root, links are never followed."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sagemaker_contract.platform import untrusted
from pytest_sagemaker_contract.platform.artifacts import list_files, merge_roots, write_archive
from pytest_sagemaker_contract.platform.layout import HostLayout
from pytest_sagemaker_contract.platform.untrusted import (
    DIR,
    FILE,
    LINK,
    LinkRefused,
    NotRegularFile,
    UnsafeName,
    collapse,
    open_file,
    read_text,
    resolve_inside,
    safe_join,
    safe_relative,
    walk,
)

ROOT = Path("/srv/job/checkpoints")
segment = st.sampled_from(["", ".", "..", "a", "b", "..a", "a..", "...", "x y", "é", "\\", "~"])


@given(st.lists(segment, min_size=1, max_size=8), st.booleans())
def test_safe_join_never_leaves_the_root(parts: list[str], absolute: bool) -> None:
    name = ("/" if absolute else "") + "/".join(parts)
    try:
        joined = safe_join(ROOT, name)
    except UnsafeName:
        return
    assert os.path.commonpath([ROOT, os.path.normpath(joined)]) == str(ROOT)
    assert os.path.normpath(joined) == str(joined)  # nothing to fold: no `.`, `..` or `//` got through
    assert joined != ROOT


@given(st.text(min_size=1, max_size=40))
def test_any_text_either_refused_or_inside(name: str) -> None:
    try:
        joined = safe_join(ROOT, name)
    except UnsafeName:
        return
    assert str(joined).startswith(f"{ROOT}/")
    assert ".." not in joined.relative_to(ROOT).parts


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../etc/cron.d/x", "'..'"),
        ("a/../../b", "'..'"),
        ("..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("./a", "'.' segment"),
        ("", "empty"),
        ("a\x00b", "NUL"),
    ],
)
def test_refusals_name_the_reason(name: str, why: str) -> None:
    with pytest.raises(UnsafeName, match=why):
        safe_relative(name)


@pytest.mark.parametrize("name", ["a", "a/b/c.pt", "..a/b..", "...", "x y/é"])
def test_plain_names_pass(name: str) -> None:
    assert safe_join(ROOT, name) == ROOT / name


@given(st.lists(segment, min_size=1, max_size=6))
def test_collapse_keeps_dotdot_for_the_refusal(parts: list[str]) -> None:
    name = "/".join(parts)
    folded = collapse(name)
    assert "" not in folded.split("/") or folded == ""
    assert "." not in folded.split("/")
    assert (".." in folded.split("/")) == (".." in parts)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a file, a directory, links in and out, a FIFO; and a 'host secret' outside it."""
    secret = tmp_path / "secret"
    secret.write_text("HOST-SECRET")
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "w.bin").write_bytes(b"weights")
    (root / "out").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path)
    (root / "dangling").symlink_to("/nonexistent/x")
    (root / "latest").symlink_to("d/w.bin")
    os.mkfifo(root / "fifo")
    return root, secret


def test_walk_reports_links_as_links_and_never_descends_them(tree: tuple[Path, Path]) -> None:
    root, _secret = tree
    seen = {e.name: (e.kind, e.target) for e in walk(root)}
    assert seen["d"] == (DIR, None)
    assert seen["d/w.bin"] == (FILE, None)
    assert seen["out"][0] == LINK
    assert seen["dirlink"][0] == LINK
    assert not any(name.startswith("dirlink/") for name in seen)
    assert seen["fifo"][0] == untrusted.OTHER
    assert list_files(root) == ["d/w.bin"]


def test_a_root_that_is_a_link_holds_nothing(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _secret = tree
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "data").symlink_to(root)
    assert list(walk(tmp_path / "output" / "data")) == []


def test_open_file_refuses_links_fifos_and_link_directories(tree: tuple[Path, Path]) -> None:
    root, _secret = tree
    with open_file(root, "d/w.bin") as fh:
        assert fh.read() == b"weights"
    with pytest.raises(LinkRefused) as refused:
        open_file(root, "out")
    assert refused.value.target is not None
    assert refused.value.target.endswith("secret")
    with pytest.raises(LinkRefused):
        open_file(root, "dirlink/secret")
    with pytest.raises(NotRegularFile):
        open_file(root, "fifo")  # never blocks: the FIFO is never opened for reading
    with pytest.raises(NotRegularFile):
        open_file(root, "d")
    with pytest.raises(FileNotFoundError):
        open_file(root, "missing")
    with pytest.raises(UnsafeName):
        open_file(root, "../secret")


def test_failure_file_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("HOST-SECRET")
    layout = HostLayout(tmp_path / "host", None)
    layout.create()
    (layout.output / "failure").symlink_to(secret)
    text = layout.failure_text()
    assert text is not None
    assert "HOST-SECRET" not in text
    assert "was a symbolic link" in text
    assert "not followed" in text
    with pytest.raises(LinkRefused):
        read_text(layout.output, "failure", 1024)
    (layout.output / "failure").unlink()
    os.mkfifo(layout.output / "failure")
    assert layout.failure_text() is None


def test_resolve_inside_follows_only_chains_that_stay_inside(tree: tuple[Path, Path]) -> None:
    root, _secret = tree
    assert resolve_inside(root, "latest") == "d/w.bin"
    assert resolve_inside(root, "out") is None
    assert resolve_inside(root, "dangling") is None
    (root / "abs").symlink_to("/opt/ml/checkpoints/d/w.bin")
    assert resolve_inside(root, "abs", "/opt/ml/checkpoints") == "d/w.bin"
    assert resolve_inside(root, "abs", "/elsewhere") is None
    (root / "up").symlink_to("../root/d/w.bin")
    assert resolve_inside(root, "up") is None  # climbs out of the root, even if it comes back
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    assert resolve_inside(root, "loop1") is None


def test_merge_and_pack_keep_links_as_links_and_count_only_files(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _secret = tree
    merged = merge_roots([root])
    assert merged.files == ["d/w.bin"]
    assert "out -> " + str(tmp_path / "secret") in merged.links
    assert "latest -> d/w.bin" in merged.links
    assert "fifo" not in [name for _p, name in merged.entries]


def test_model_of_only_a_dangling_link_has_no_files(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pt").symlink_to("/nowhere/model.pt")
    merged = merge_roots([tmp_path / "m"])
    assert merged.files == []
    assert merged.links == ["model.pt -> /nowhere/model.pt"]
    assert list_files(tmp_path / "m") == []


def test_a_clash_between_a_link_and_a_file_is_reported_without_reading_the_target(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "w").write_text("x" * 11)
    (tmp_path / "secret").write_text("HOST-SECRE" + "T")
    (b / "w").symlink_to(tmp_path / "secret")
    assert merge_roots([a, b]).clashes == ["w"]
    (b / "w").unlink()
    (b / "w").write_text("x" * 11)
    assert merge_roots([a, b]).clashes == []


def test_tar_of_the_merged_tree_holds_links_not_their_targets(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _secret = tree
    with tarfile.open(tmp_path / "x.tar", "w") as tar:
        write_archive(tar, merge_roots([root]))
    with tarfile.open(tmp_path / "x.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("d/w.bin").read() == b"weights"  # type: ignore[union-attr]
    assert members["out"].issym()
    assert members["out"].size == 0
    assert members["out"].linkname.endswith("secret")
    assert members["dirlink"].issym()
    assert members["latest"].linkname == "d/w.bin"
    assert "fifo" not in members
