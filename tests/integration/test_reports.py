"""The reports of one real run (busybox image, real engine, under pytest-xdist), read as their readers read them.

The JSON report against docs/report.schema.json, the JUnit XML as a CI test-report page parses it, and the
HTML report in a real headless Chromium: a screenshot that is not blank and a DOM with the table and the
timeline. The run is the SIGTERM example without a trap, so the timeline has every event up to SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from .conftest_helpers import REPO

SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
CHECKS = "SM-IMG-EXEC-FORM or SM-RUN-DEFAULT or SM-SIG-TERM or SM-CKPT-RESUME"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@dataclass
class Reports:
    code: int
    output: str
    json: Path
    html: Path
    junit: Path
    pytest_html: Path | None


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, example_image: Callable[[str | Path], str]) -> Reports:
    image = example_image(REPO / "examples" / "sigterm" / "shell-bad")
    out = tmp_path_factory.mktemp("reports")
    has_pytest_html = _importable("pytest_html")
    command = [
        *(sys.executable, "-m", "pytest", str(out), "-p", "no:cacheprovider", "-p", "no:randomly", "-n", "2"),
        *(f"--sm-image={image}", "--sm-hyperparameter=seconds=2", "--sm-sigterm-hyperparameter=seconds=120"),
        *("--sm-grace=2", "--sm-stop-after=1", "-k", CHECKS),
        *(f"--sm-report={out / 'report.json'}", f"--sm-html={out / 'report.html'}"),
        f"--junitxml={out / 'junit.xml'}",
        *([f"--html={out / 'pytest-html.html'}", "--self-contained-html"] if has_pytest_html else []),
    ]
    done = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=600)
    return Reports(
        done.returncode,
        done.stdout + done.stderr,
        out / "report.json",
        out / "report.html",
        out / "junit.xml",
        out / "pytest-html.html" if has_pytest_html else None,
    )


def _importable(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_run_fails_sigterm_and_writes_every_report(reports: Reports) -> None:
    assert reports.code == 1, reports.output
    assert "FAILED" in reports.output
    assert f"contract report (HTML): {reports.html}" in reports.output
    for path in (reports.json, reports.html, reports.junit):
        assert path.stat().st_size > 0, path


def test_the_json_report_matches_its_schema_and_holds_the_sigterm_timeline(reports: Reports) -> None:
    data = json.loads(reports.json.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    checks = {c["id"]: c for c in data["images"][0]["checks"]}
    assert list(checks) == ["SM-IMG-EXEC-FORM", "SM-RUN-DEFAULT", "SM-SIG-TERM", "SM-CKPT-RESUME"]
    (job,) = checks["SM-SIG-TERM"]["jobs"]
    ev = job["events"]
    assert ev["created"] <= ev["started"] <= ev["stop_requested"] <= ev["sigterm_sent"], ev
    assert ev["kill_due"] == pytest.approx(ev["sigterm_sent"] + 2, abs=0.01), "grace deadline is SIGTERM + --sm-grace"
    assert ev["kill_due"] - 0.6 <= ev["sigkill_sent"] <= ev["exited"] <= ev["finished"], ev
    assert job["hosts"] == [
        {"host": "algo-1", "exit_code": 137, "killed": True, "oom_killed": False, "exited": job["hosts"][0]["exited"]}
    ]
    assert job["process_tree_at_sigterm"], "the tree the diagnosis read"
    assert "jobs" not in checks["SM-IMG-EXEC-FORM"], "a static check runs no job"


def test_junit_test_cases_carry_log_tail_and_process_tree_in_system_out(reports: Reports) -> None:
    cases = {case.get("name"): case for case in ET.parse(reports.junit).iter("testcase")}
    sigterm = cases["SM-SIG-TERM"]
    assert [child.tag for child in sigterm] == ["properties", "failure", "system-out"]
    out = sigterm.findtext("system-out") or ""
    assert "--- sagemaker log (tail) ---" in out
    assert "step 1/120" in out
    assert "--- process tree at SIGTERM ---" in out
    assert "/opt/program/train.sh" in out
    assert "(SIGKILL)" in out, "the job line says the host was killed"
    names = {p.get("name") for p in sigterm.iter("property")}
    assert {"sm_check_id", "sm_outcome", "sm_reason", "sm_log_path"} <= names
    heavy = {"sm_log_tail", "sm_sections", "sm_timeline"}
    assert not names & heavy, "properties as before: the details are in system-out"
    assert (cases["SM-RUN-DEFAULT"].findtext("system-out") or "").count("sm-contract-run-default") >= 1


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("SM_CONTRACT_REQUIRE_CHROMIUM") == "1":
            pytest.fail("SM_CONTRACT_REQUIRE_CHROMIUM=1 but no chromium on PATH: apt-get install -y chromium")
        pytest.skip("no chromium on PATH (apt-get install -y chromium); CI sets SM_CONTRACT_REQUIRE_CHROMIUM=1")
    return found


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "profile"
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, timeout=120, check=False)


def test_the_html_report_renders_in_headless_chromium(reports: Reports, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", reports.html.as_uri())
    assert shot.exists(), done.stderr.decode(errors="replace")[-2000:]
    width, height, pixels = read_png(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    colours = {pixels[i : i + 3] for i in range(0, len(pixels), 3 * 97)}
    assert len(colours) >= 12, f"a blank or near-blank page: {len(colours)} colours"
    inked = sum(1 for i in range(0, len(pixels), 3 * 97) if pixels[i : i + 3] != b"\xff\xff\xff")
    assert inked > len(pixels) // (3 * 97) // 20, "less than 5% of the page has anything on it"

    dom = run_chromium(tmp_path, "--dump-dom", reports.html.as_uri()).stdout.decode()
    assert '<table class="contract">' in dom
    for check in ("SM-IMG-EXEC-FORM", "SM-RUN-DEFAULT", "SM-SIG-TERM", "SM-CKPT-RESUME"):
        assert f'id="{check}"' in dom, check
    assert '<svg class="timeline"' in dom
    assert dom.count('class="lane"') == 2, "the default run and the SIGTERM run, one host each"
    assert 'class="sigkill"' in dom
    assert 'class="kill_due"' in dom


def test_pytest_html_shows_the_contract_table_and_timeline(reports: Reports) -> None:
    if reports.pytest_html is None:
        pytest.skip("pytest-html is not installed (optional: pip install pytest-html)")
    page = reports.pytest_html.read_text()
    assert 'class="contract"' in page
    assert 'id="SM-SIG-TERM"' in page
    assert '<svg class="timeline"' in page


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of an 8-bit RGB or RGBA PNG (what Chromium writes), unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) in ((8, 2), (8, 6)), f"PNG depth {depth} colour type {colour}"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    rgb = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 2:  # Up, the commonest: a bytewise add without carries, on the whole row at once
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            line = bytearray((((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big"))
        elif kind in (1, 3, 4):
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up, corner = prev[i], prev[i - channels] if i >= channels else 0
                if kind == 1:
                    line[i] = (line[i] + left) & 0xFF
                elif kind == 3:
                    line[i] = (line[i] + (left + up) // 2) & 0xFF
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        prev = line
        if channels == 3:
            rgb += line
        else:
            for i in range(0, stride, 4):
                rgb += line[i : i + 3]
    return width, height, bytes(rgb)
