"""The stop timeline agrees with the engine's own record (`docker events`): same events, in causal order.

No durations are compared: on a busy machine any step may be late. What must hold whatever the load is the
order: the platform notes SIGTERM/SIGKILL before it asks the engine to send them, and notes the start and
the exit after the engine has done them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sagemaker_contract.jobs import job_name, with_overrides
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES

#: The grace is timed on the monotonic clock, the timeline on the wall clock: they may drift this much apart.
SLEW = 0.01


@pytest.mark.parametrize(("image_dir", "grace", "killed"), [("slow-handler", 60.0, False), ("slow-handler", 2.0, True)])
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
        assert job.wait_for_log("step 1", timeout=60)
        job.stop(grace=grace)
        result = job.wait(grace + 120)
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
        assert tl.created is not None
        assert tl.started is not None
        assert tl.sigterm_sent is not None
        assert tl.exited is not None
        assert tl.finished is not None
        assert {"start", "sigterm", "die"} <= set(seen), seen
        # Created, then started by the engine, then noted as started (after the start call returned).
        assert tl.created <= seen["start"] <= tl.started
        # SIGTERM noted, then sent by the engine; the container died after that, before the job finished.
        assert tl.started <= tl.sigterm_sent <= seen["sigterm"] <= seen["die"] <= tl.finished
        assert tl.sigterm_sent <= tl.exited <= tl.finished
        assert "SIGTERM: saving a big model" in result.logs_after_sigterm  # the handler ran
        assert result.killed is killed
        if killed:
            assert "sigkill" in seen, seen
            assert tl.sigkill_sent is not None
            # SIGKILL only once the grace was over; noted, then sent, then the container died of it.
            assert tl.sigkill_sent >= tl.sigterm_sent + grace - SLEW
            assert tl.sigkill_sent <= seen["sigkill"] <= seen["die"]
            assert tl.sigkill_sent <= tl.exited
            assert result.exit_code == 137
            assert result.model_files == []  # killed before the handler could save
        else:
            assert "sigkill" not in seen
            assert tl.sigkill_sent is None
            assert seen["die"] < tl.sigterm_sent + grace  # exited before SIGKILL was due
            # The handler's eight 1 s sleeps ran to the end before the exit (load only makes this longer).
            assert (tl.seconds_to_exit_after_sigterm or 0) >= 8.0
            assert result.exit_code == 0
            assert result.model_files == ["model.txt"]
    finally:
        engine.remove(job.container_ids[0])
        platform.keep = False
        platform.close()
        s3.stop()
