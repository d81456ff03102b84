"""Slots: a single-host job's network and credentials pod, handed on to the session's next such job.

(A platform economy, not SageMaker's warm pools, which are warm_pool.py.)

On SageMaker each job gets an instance; here its stand-in is a network on which the host is `algo-1` and a
credentials pod whose network namespace the training container joins (contract §7, §11). Creating and
removing those two cost more than the training container itself (docs/performance.md), so a single-host job
that ended cleanly hands them back and the next one takes them. The next job's container still starts
fresh, with its own credentials document at a new random path: a job's processes, sockets and files die
with its container, and the pod holds nothing but the network namespace and the documents it serves.
Multi-host jobs, jobs under network isolation (no credentials, an internal network) and `--sm-keep` runs
keep a network and pods of their own.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .credentials import CredentialsEndpoint, serve_document, start_credentials_pod
from .engine import Engine
from .layout import instance_hostname

__all__ = ["LABEL_SLOT", "Slot", "SlotPool"]

#: On a slot's network and pod: they outlive one job (an idle slot is the platform's, not a leftover).
LABEL_SLOT = "sm-contract.slot"


@dataclass(frozen=True)
class Slot:
    network: str
    network_id: str
    pod: str
    #: The instance's host name (`ip-10-0-x-y`): the pod's, so every job in the slot has it.
    hostname: str


class SlotPool:
    """The session's idle slots; `take` hands one out (or makes one), `give_back` keeps it for the next job."""

    def __init__(self, engine: Engine, labels: Mapping[str, str]) -> None:
        self.engine = engine
        self.labels = {**labels, LABEL_SLOT: "1"}
        self._idle: list[Slot] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def idle(self) -> tuple[Slot, ...]:
        """The slots waiting for a job now (the platform's own until it closes, never a job's leftovers)."""
        with self._lock:
            return tuple(self._idle)

    def take(self, image: str, endpoint: CredentialsEndpoint, leave: Callable[[str], None]) -> Slot:
        """An idle slot whose pod still runs, now serving `endpoint`; else a new one. Raises EngineError."""
        while True:
            with self._lock:
                slot = self._idle.pop() if self._idle else None
            if slot is None:
                return self._create(image, endpoint)
            if self.engine.is_running(slot.pod):
                try:
                    serve_document(self.engine, slot.pod, endpoint)
                    return slot
                except Exception:
                    pass
            self.discard(slot, leave)

    def _create(self, image: str, endpoint: CredentialsEndpoint) -> Slot:
        key = uuid.uuid4().hex[:10]
        name = f"sm-slot-{key}"
        hostname = instance_hostname(key, 0)
        network_id = self.engine.create_network(name, labels=self.labels, internal=False)
        try:
            pod = start_credentials_pod(
                self.engine,
                image,
                name=f"{name}-pod",
                hostname=hostname,
                network=name,
                aliases=("algo-1", hostname),
                labels={**self.labels, "sm-contract.host": "algo-1"},
                endpoint=endpoint,
            )
        except Exception:
            with contextlib.suppress(Exception):
                self.engine.remove(f"{name}-pod")
            with contextlib.suppress(Exception):
                self.engine.remove_network(network_id)
            raise
        return Slot(name, network_id, pod, hostname)

    def give_back(self, slot: Slot, leave: Callable[[str], None]) -> None:
        """Keep `slot` for the next job (after the job's container is gone), or remove it once closed."""
        with self._lock:
            if not self._closed:
                self._idle.append(slot)
                return
        self.discard(slot, leave)

    def discard(self, slot: Slot, leave: Callable[[str], None]) -> None:
        """Remove the slot's pod, then (the relay let go of it first) its network; never raises."""
        with contextlib.suppress(Exception):
            self.engine.remove(slot.pod)
        with contextlib.suppress(Exception):
            leave(slot.network)
        with contextlib.suppress(Exception):
            self.engine.remove_network(slot.network_id)

    def close(self, leave: Callable[[str], None]) -> None:
        """Remove every idle slot; a slot given back later is removed then."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for slot in idle:
            self.discard(slot, leave)
