"""Interference from outside the platform: someone else signalling, stopping, restarting or pausing a job's container.

A run disturbed that way says nothing about the image: an image that saves and exits 0 on SIGTERM
"completes" in 4 s when someone runs `docker kill -s TERM`, and a handler frozen by `docker pause`
"overruns" its grace. The platform knows every signal it sent (the engine records them); the engine's
event stream shows every signal the container got and every stop, restart and pause. What the stream
shows beyond the platform's own acts was done by someone else: it becomes the host's engine fault, so
the job fails as SageMaker's InternalServerError and every check reports an environment fault naming it.
The stream's order, not a clock, says when it happened (before the platform's SIGTERM: while training).
"""

from __future__ import annotations

import collections
import contextlib
import signal as signals
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .engine import Engine
from .result import Timeline

__all__ = ["PATIENCE_S", "Interference", "InterferenceWatcher", "interference_acts"]

#: How long the end of a job waits for the event stream to show the exits the platform already saw.
PATIENCE_S = 5.0

_TRAINING = "while training"
_GRACE = "during the SIGTERM grace period"
_KILLING = "while the platform was killing it"


class HostRun(Protocol):
    """What the watcher reads and writes of one host's run (job_plan.py's `HostRun`)."""

    container_id: str | None
    name: str
    exit_code: int | None
    start_error: str | None
    engine_fault: str | None


@dataclass
class Interference:
    """One act of someone else on a container, placed by the event stream."""

    what: str
    hint: str
    phase: str
    #: Seconds since the container's start (engine clock), None when its start was not seen.
    at_s: float | None
    #: For a pause: how long until the unpause (None while still paused or unknown).
    lasted_s: float | None = None
    #: For a pause the platform's own signal ended (the engine resumes a paused container it signals).
    ended_by: str | None = None

    def phrase(self) -> str:
        at = f" at {self.at_s:.1f} s" if self.at_s is not None else ""
        lasted = ""
        if self.what == "paused":
            lasted = f" for {self.lasted_s:.1f} s" if self.lasted_s is not None else " and not resumed by anyone else"
            if self.ended_by is not None:
                lasted += f", until the platform's {self.ended_by} resumed it"
        return f"was {self.what} from outside the platform{at} ({self.hint}?) {self.phase}{lasted}"


def _signum(value: object) -> int | None:
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return int(signals.Signals[name].value)
    except KeyError:
        return None


def _signame(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def interference_acts(events: Iterable[Mapping[str, Any]], sent: Iterable[str]) -> list[Interference]:
    """What someone else did to one container, from its engine events (in stream order) and the signals
    the platform sent it (`Engine.signals_sent`). Pure: unit-testable without an engine."""
    ours: collections.Counter[int] = collections.Counter(n for n in (_signum(s) for s in sent) if n is not None)
    acts: list[Interference] = []
    phase = _TRAINING
    started: int | None = None
    for event in events:
        action = str(event.get("Action") or event.get("status") or "")
        stamp = int(event.get("timeNano") or 0)
        if action == "start" and started is None:
            started = stamp
            continue
        at = (stamp - started) / 1e9 if started is not None and stamp else None
        if action == "kill":
            number = _signum((event.get("Actor") or {}).get("Attributes", {}).get("signal", ""))
            if number is None:
                continue
            if ours[number] > 0:
                ours[number] -= 1
                pause = _open_pause(acts)
                if pause is not None and pause.at_s is not None and at is not None:
                    pause.lasted_s, pause.ended_by = max(0.0, at - pause.at_s), _signame(number)
                if number == signals.SIGTERM:
                    phase = _GRACE
                elif number == signals.SIGKILL:
                    phase = _KILLING
                continue
            short = _signame(number).removeprefix("SIG")
            hint = (
                "docker kill, docker stop or docker restart" if number == signals.SIGTERM else f"docker kill -s {short}"
            )
            acts.append(Interference(f"sent {_signame(number)}", hint, phase, at))
        elif action == "stop":  # the platform never calls the stop API: `docker stop` or `docker restart`
            last = acts[-1] if acts else None
            if last is not None and last.what.startswith("sent "):
                last.what, last.hint = "stopped", "docker stop"
            else:
                acts.append(Interference("stopped", "docker stop", phase, at))
        elif action == "restart":
            last = acts[-1] if acts else None
            if last is not None and last.what == "stopped":
                last.what, last.hint = "restarted", "docker restart"
            else:
                acts.append(Interference("restarted", "docker restart", phase, at))
        elif action == "pause":
            acts.append(Interference("paused", "docker pause", phase, at))
        elif action == "unpause":
            pause = _open_pause(acts)
            if pause is not None and pause.at_s is not None and at is not None:
                pause.lasted_s = max(0.0, at - pause.at_s)
    return acts


def _open_pause(acts: list[Interference]) -> Interference | None:
    return next((a for a in reversed(acts) if a.what == "paused" and a.lasted_s is None), None)


class InterferenceWatcher:
    """Follows the engine's events for a job's containers from before their start to the job's end."""

    def __init__(self, engine: Engine, containers: Mapping[str, str]) -> None:
        """`containers`: id -> name. Subscribes at once (before the containers start, to see their start)."""
        self._engine = engine
        self._names = dict(containers)
        self._events: dict[str, list[dict[str, Any]]] = {cid: [] for cid in containers}
        self._cond = threading.Condition()
        self._closed = False
        self._ended = False
        self._stream: Any = None
        try:
            self._stream = engine.container_events(list(containers)) if containers else None
        except Exception:
            self._stream = None  # an engine without an event stream: only the state checks at the end remain
        if self._stream is None:
            self._ended = True
            return
        threading.Thread(target=self._read, name="sm-interference", daemon=True).start()

    def _read(self) -> None:
        stream = self._stream
        try:
            while stream is not None:
                try:
                    for event in stream:
                        if isinstance(event, dict):
                            with self._cond:
                                self._events.setdefault(str(event.get("id", "")), []).append(event)
                                self._cond.notify_all()
                except Exception:
                    pass
                with self._cond:
                    if self._closed:
                        return
                    seen = [int(e.get("timeNano") or 0) for evs in self._events.values() for e in evs]
                since = max(seen) / 1e9 if seen else None
                try:  # the stream broke off (a remote engine, a proxy): reattach where it ended
                    stream = self._stream = self._engine.container_events(list(self._names), since=since)
                except Exception:
                    stream = None
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _deduplicated(self, container_id: str) -> list[dict[str, Any]]:
        unique: dict[tuple[object, ...], dict[str, Any]] = {}
        for event in self._events.get(container_id, []):
            attributes = (event.get("Actor") or {}).get("Attributes", {})
            unique.setdefault((event.get("timeNano"), event.get("Action"), attributes.get("signal")), event)
        return list(unique.values())

    def finish(self, runs: Iterable[HostRun], timeline: Timeline) -> None:
        """Stop watching once the stream shows the exit of every container the platform saw exit (at most
        PATIENCE_S), and make what someone else did each host's engine fault, also listed on `timeline`."""
        runs = [r for r in runs if r.container_id is not None and r.container_id in self._names]
        exited = [r.container_id for r in runs if r.exit_code is not None and r.start_error is None]
        deadline = time.monotonic() + PATIENCE_S
        with self._cond:
            while not self._ended and any(
                not any(e.get("Action") == "die" for e in self._events.get(str(cid), [])) for cid in exited
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._closed = True
            snapshot = {str(r.container_id): self._deduplicated(str(r.container_id)) for r in runs}
        with contextlib.suppress(Exception):
            if self._stream is not None:
                self._stream.close()
        for run in runs:
            cid = str(run.container_id)
            acts = interference_acts(snapshot[cid], self._engine.signals_sent.get(cid, []))
            if not any(a.what == "paused" for a in acts):
                with contextlib.suppress(Exception):
                    if self._engine.state(cid).get("Paused"):
                        acts.append(Interference("paused", "docker pause", "when the run ended", None))
            if not acts:
                continue
            sentence = f"container {run.name} " + "; then ".join(a.phrase() for a in acts)
            timeline.interference.append(sentence)
            if run.engine_fault is None:
                run.engine_fault = sentence
