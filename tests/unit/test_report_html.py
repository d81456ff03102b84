"""The HTML report and the JUnit details from rows alone (no Docker): what they show, and that they stay inert."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import jsonschema
import pytest

from pytest_sagemaker_contract.report import ContractReport, Row
from pytest_sagemaker_contract.report_html import render, timeline_svg
from pytest_sagemaker_contract.report_junit import detail_properties, details_text, parse_sections
from pytest_sagemaker_contract.report_timeline import TIMELINE_EVENTS, parse_timeline

from ..helpers import REPO

SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
T0 = 1_800_000_000.0


def killed_job() -> dict[str, Any]:
    events = dict.fromkeys(TIMELINE_EVENTS)
    events.update(
        created=T0, started=T0 + 2, stop_requested=T0 + 5, sigterm_sent=T0 + 5.2, kill_due=T0 + 35.2,
        sigkill_sent=T0 + 35.2, exited=T0 + 35.4, finished=T0 + 36,
    )  # fmt: skip
    return {
        "name": "algo-sig-term-1",
        "status": "Stopped",
        "secondary_status": "Stopped",
        "events": events,
        "hosts": [
            {"host": "algo-1", "exit_code": 137, "killed": True, "oom_killed": False, "exited": T0 + 35.4},
            {"host": "algo-2", "exit_code": 0, "killed": False, "oom_killed": False, "exited": T0 + 6},
        ],
    }


def contract_report(message: str = "fine") -> ContractReport:
    report = ContractReport(None, is_worker=False)
    report.images["algo:ci"] = [
        Row("SM-SIG-TERM", "§5 StopTrainingJob", "failed", message, 36.0, image_id="sha256:abc",
            log_tail="epoch 1\nepoch 2", sections=[("process tree at SIGTERM", "1 0 /bin/sh train.sh")],
            jobs=[killed_job()]),
        Row("SM-IMG-EXEC-FORM", "§1 exec form", "passed", "ENTRYPOINT is exec form", 0.1),
        Row("SM-CKPT-RESUME", "§7 checkpoints", "skipped", "no CheckpointConfig", 0.0, skip_kind="untested"),
    ]  # fmt: skip
    return report


def test_the_timeline_draws_a_lane_per_host_with_every_stop_event() -> None:
    svg = timeline_svg([killed_job()])
    root = ET.fromstring(svg)  # well-formed XML, so browsers render it inline
    ns = "{http://www.w3.org/2000/svg}"
    lanes = [g for g in root.iter(f"{ns}g") if g.get("class") == "lane"]
    assert [(g.get("data-job"), g.get("data-host")) for g in lanes] == [
        ("algo-sig-term-1", "algo-1"),
        ("algo-sig-term-1", "algo-2"),
    ]
    first = {el.get("class") for el in lanes[0].iter() if el.get("class")}
    assert {"staging", "training", "stopping", "upload", "stop_requested", "sigterm_sent", "kill_due"} <= first
    assert "sigkill" in first, "the killed host shows SIGKILL"
    second = {el.get("class") for el in lanes[1].iter() if el.get("class")}
    assert "sigkill" not in second, "the host that exited in its grace shows no SIGKILL"


def test_the_page_holds_the_table_the_fix_and_the_details_in_suite_order() -> None:
    page = render(contract_report("still running 30 s after SIGTERM; fix: exec-form ENTRYPOINT"))
    assert page.startswith("<!DOCTYPE html>")
    ids = re.findall(r'<tr class="\w+" id="(SM-[A-Z-]+)"', page)
    assert ids == ["SM-IMG-EXEC-FORM", "SM-SIG-TERM", "SM-CKPT-RESUME"]
    assert "fix: exec-form ENTRYPOINT" in page
    assert "epoch 2" in page
    assert "process tree at SIGTERM" in page
    assert "1 not tested" in page
    assert "<svg" in page


def test_the_page_is_inert_and_self_contained() -> None:
    page = render(contract_report('<script>alert(1)</script><img src="http://x/y.png">'))
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    tags = Tags()
    tags.feed(page)
    assert "script" not in tags.names
    assert "img" not in tags.names
    assert tags.links == [], "no external asset"
    assert "@import" not in page
    assert "url(" not in page


class Tags(HTMLParser):
    """Every element name, and every attribute that would load or link something."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.links.extend(f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href", "xlink:href", "action"))


def test_a_report_without_checks_says_so() -> None:
    page = render(ContractReport(None, is_worker=False))
    assert "No contract check ran" in page


def test_junit_details_carry_the_message_jobs_log_tail_and_sections() -> None:
    props = dict(detail_properties("epoch 1\nepoch 2", [("process tree at SIGTERM", "1 0 sh")], []))
    props.update(sm_check_id="SM-SIG-TERM", sm_outcome="failed", sm_reason="killed", sm_log_path="/tmp/x.log")
    props["sm_timeline"] = json.dumps([killed_job()])
    text = details_text(props)
    assert text.startswith("SM-SIG-TERM FAILED: killed")
    assert "epoch 2\n(full log: /tmp/x.log)" in text
    assert "--- process tree at SIGTERM ---\n1 0 sh" in text
    assert "algo-sig-term-1: Stopped" in text
    assert "sigterm_sent +5.2s" in text
    assert "(SIGKILL)" in text


@pytest.mark.parametrize("raw", [None, 3, "not json", "{}", "[1, 2]"])
def test_malformed_properties_read_as_nothing(raw: object) -> None:
    assert parse_timeline(raw) == []
    assert parse_sections(raw) == []


def test_the_json_report_of_rows_with_jobs_matches_the_schema() -> None:
    data = contract_report().as_json()
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["images"][0]["checks"][1]["jobs"][0]["events"]["sigkill_sent"] == T0 + 35.2
    broken = json.loads(json.dumps(data))
    broken["images"][0]["checks"][1]["jobs"][0]["events"].pop("kill_due")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(broken)
