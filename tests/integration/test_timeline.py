"""The stop timeline agrees with the engine's own record (`docker events`) to within 0.5 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sagemaker_contract.jobs import job_name, with_overrides
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform
from pytest_sagemaker_contract.spec import parse_request

IMAGES = Path(__file__).resolve().parents[1] / "images"


@pytest.mark.parametrize(("image_dir", "grace", "killed"), [("slow-handler", 20.0, False), ("slow-handler", 2.0, True)])
def test_timeline_matches_docker_events(
    example_image: Callable[[str | Path], str], tmp_path: Path, image_dir: str, grace: float, killed: bool
) -> None:
    image = example_image(IMAGES / image_dir)
    engine = Engine()
    s3 = S3Server().start()
    platform = TrainingPlatform(engine, s3, tmp_path, keep=True)
    try:
        spec = parse_request(with_overrides(None, name=job_name("timeline"), image=image))
        since = time.time() - 1
        job = platform.start(spec)
        assert job.wait_for_log("step 1", timeout=30)
        job.stop(grace=grace)
        result = job.wait(60)
        [container] = job.container_ids
        events = engine.api.events(
            since=int(since), until=int(time.time()) + 1, filters={"container": container}, decode=True
        )
        seen: dict[str, float] = {}
        for event in events:
            action = event.get("Action") or event.get("status", "")
            stamp = event["timeNano"] / 1e9
            if action == "start":
                seen.setdefault("start", stamp)
            elif action == "kill" and event["Actor"]["Attributes"].get("signal") == "15":
                seen.setdefault("sigterm", stamp)
            elif action == "kill" and event["Actor"]["Attributes"].get("signal") == "9":
                seen.setdefault("sigkill", stamp)
            elif action == "die":
                seen.setdefault("die", stamp)
        tl = result.timeline
        assert tl.started is not None
        assert tl.sigterm_sent is not None
        assert tl.exited is not None
        assert abs(tl.started - seen["start"]) < 0.5
        assert abs(tl.sigterm_sent - seen["sigterm"]) < 0.5
        assert abs(tl.exited - seen["die"]) < 0.5
        assert result.killed is killed
        if killed:
            assert tl.sigkill_sent is not None
            assert abs(tl.sigkill_sent - seen["sigkill"]) < 0.5
            assert abs((tl.seconds_to_exit_after_sigterm or 0) - grace) < 0.5
        else:
            assert "sigkill" not in seen
            assert 7.0 < (tl.seconds_to_exit_after_sigterm or 0) < 10.0
    finally:
        engine.remove(job.container_ids[0])
        platform.keep = False
        platform.close()
        s3.stop()
