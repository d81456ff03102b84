"""k-means as a SageMaker training algorithm: a small, stdlib-only image that obeys the contract.

It reads what the platform writes under /opt/ml/input, trains on every CSV file of channel ``train``,
saves the model under /opt/ml/model even when stopped (SIGTERM), resumes from /opt/ml/checkpoints
when that directory is provided, and reports errors through /opt/ml/output/failure.

Hyperparameters (strings, as SageMaker passes them): ``k`` (3), ``epochs`` (10), ``seed`` (0) and
``seconds_per_epoch`` (0; lets a test keep training running long enough to stop it).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ML = Path("/opt/ml")
CONFIG = ML / "input" / "config"
CHANNEL = "train"
DATA = ML / "input" / "data" / CHANNEL
MODEL = ML / "model" / "model.json"
METRICS = ML / "output" / "data" / "metrics.json"
FAILURE = ML / "output" / "failure"
CHECKPOINTS = ML / "checkpoints"
STATE = CHECKPOINTS / "state.json"

Point = tuple[float, ...]


class Stopped(BaseException):
    """Raised from the SIGTERM handler so whatever is running (even a sleep) unwinds at once."""


class AlgorithmError(Exception):
    """A problem with the job's inputs: its message becomes the job's FailureReason."""


@dataclass
class Progress:
    """What would be saved if training stopped now; only replaced whole, after each epoch."""

    hyperparameters: dict[str, Any] = field(default_factory=dict)
    host: str = "unknown"
    hosts: list[str] = field(default_factory=list)
    rows: int = 0
    epochs_completed: int = 0
    resumed_from_epoch: int | None = None
    centroids: list[Point] = field(default_factory=list)
    inertia: float | None = None


def log(message: str) -> None:
    print(message, flush=True)


def read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        log(f"{path} not found; using {default!r}")
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise AlgorithmError(f"{path} is not valid JSON: {exc}") from None


def parse_hyperparameters(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise AlgorithmError("hyperparameters.json must hold a JSON object")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise AlgorithmError(f"hyperparameter {key}={value!r} is not a string; SageMaker passes strings")
    known = {
        "k": (int, "3", 1),
        "epochs": (int, "10", 1),
        "seed": (int, "0", None),
        "seconds_per_epoch": (float, "0", 0),
    }
    parsed: dict[str, Any] = {}
    for name, (kind, default, minimum) in known.items():
        text = raw.get(name, default)
        try:
            value = kind(text)
        except ValueError:
            raise AlgorithmError(f"hyperparameter {name}={text!r} is not a valid {kind.__name__}") from None
        if minimum is not None and value < minimum:
            raise AlgorithmError(f"hyperparameter {name}={text!r} must be at least {minimum}")
        parsed[name] = value
    for name in sorted(set(raw) - set(known)):
        log(f"ignoring unknown hyperparameter {name}")
    return parsed


def check_channel(input_config: Any) -> None:
    if not isinstance(input_config, dict) or CHANNEL not in input_config:
        channels = sorted(input_config) if isinstance(input_config, dict) else input_config
        raise AlgorithmError(f"channel {CHANNEL!r} is required; inputdataconfig.json has {channels}")
    mode = input_config[CHANNEL].get("TrainingInputMode", "File")
    if mode == "Pipe":
        raise AlgorithmError(f"channel {CHANNEL!r} uses Pipe mode; this algorithm reads File or FastFile")


def load_points(root: Path) -> list[Point]:
    """Every row of every CSV file under ``root``; a first row that is not numeric is a header."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise AlgorithmError(f"no CSV files in channel {CHANNEL!r} ({root})")
    points: list[Point] = []
    for path in files:
        name = path.relative_to(root)
        with path.open(newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                try:
                    point = tuple(float(cell) for cell in row)
                except ValueError:
                    if number == 1:
                        continue
                    raise AlgorithmError(f"{name} line {number}: not numeric: {row}") from None
                if points and len(point) != len(points[0]):
                    raise AlgorithmError(f"{name} line {number}: {len(point)} columns, expected {len(points[0])}")
                points.append(point)
        log(f"read {name}")
    if not points:
        raise AlgorithmError(f"the CSV files in channel {CHANNEL!r} hold no rows")
    return points


def nearest(point: Point, centroids: list[Point]) -> tuple[int, float]:
    distances = [math.dist(point, c) ** 2 for c in centroids]
    best = min(range(len(centroids)), key=distances.__getitem__)
    return best, distances[best]


def epoch(points: list[Point], centroids: list[Point]) -> tuple[list[Point], float]:
    """One Lloyd iteration; an empty cluster keeps its centroid. Returns the inertia before the update."""
    sums = [[0.0] * len(centroids[0]) for _ in centroids]
    counts = [0] * len(centroids)
    inertia = 0.0
    for point in points:
        index, distance = nearest(point, centroids)
        inertia += distance
        counts[index] += 1
        sums[index] = [s + x for s, x in zip(sums[index], point, strict=True)]
    updated = [tuple(s / counts[i] for s in sums[i]) if counts[i] else centroids[i] for i in range(len(centroids))]
    return updated, inertia


def resume(progress: Progress, k: int, dimensions: int) -> list[Point] | None:
    """Centroids from a checkpoint written by an earlier run of the same shape, if there is one."""
    if not STATE.is_file():
        return None
    try:
        state = json.loads(STATE.read_text())
        centroids = [tuple(float(x) for x in c) for c in state["centroids"]]
        completed = int(state["epochs_completed"])
    except (ValueError, KeyError, TypeError) as exc:
        log(f"ignoring unreadable checkpoint {STATE}: {exc}")
        return None
    if len(centroids) != k or any(len(c) != dimensions for c in centroids):
        log(f"ignoring checkpoint {STATE}: it has {len(centroids)} centroids of another shape")
        return None
    progress.epochs_completed = progress.resumed_from_epoch = completed
    log(f"resuming from checkpoint after epoch {completed}")
    return centroids


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write then rename, so a reader (or a checkpoint sync) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(partial, path)


def train(progress: Progress, points: list[Point]) -> None:
    hp = progress.hyperparameters
    if hp["k"] > len(points):
        raise AlgorithmError(f"k={hp['k']} exceeds the {len(points)} rows in channel {CHANNEL!r}")
    centroids = resume(progress, hp["k"], len(points[0]))
    if centroids is None:
        centroids = random.Random(hp["seed"]).sample(points, hp["k"])
    progress.centroids = centroids
    for number in range(progress.epochs_completed + 1, hp["epochs"] + 1):
        if hp["seconds_per_epoch"]:
            time.sleep(hp["seconds_per_epoch"])
        centroids, inertia = epoch(points, centroids)
        progress.centroids, progress.inertia, progress.epochs_completed = centroids, inertia, number
        log(f"epoch {number}/{hp['epochs']} inertia={inertia:.6f}")
        if CHECKPOINTS.is_dir():
            write_json(STATE, {"epochs_completed": number, "centroids": centroids, "inertia": inertia})


def save(progress: Progress, interrupted: bool) -> None:
    model = {
        "algorithm": "kmeans",
        "interrupted": interrupted,
        "centroids": progress.centroids,
        "epochs_completed": progress.epochs_completed,
        "resumed_from_epoch": progress.resumed_from_epoch,
        "inertia": progress.inertia,
        "rows": progress.rows,
        "hyperparameters": progress.hyperparameters,
        "host": progress.host,
        "hosts": progress.hosts,
        "training_job_name": os.environ.get("TRAINING_JOB_NAME"),
    }
    if progress.hosts and progress.host != progress.hosts[0]:
        log(f"{progress.host} is not the leader ({progress.hosts[0]}): the leader writes the model")
        return
    write_json(MODEL, model)
    metrics = {
        "inertia": progress.inertia,
        "epochs_completed": progress.epochs_completed,
        "rows": progress.rows,
    }
    write_json(METRICS, metrics)


def fail(reason: str) -> int:
    log(f"error: {reason}")
    FAILURE.parent.mkdir(parents=True, exist_ok=True)
    FAILURE.write_text(" ".join(reason.split())[:1024] + "\n")
    return 1


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stopped


def main(argv: list[str]) -> int:
    """``argv`` is ignored: SageMaker passes ``train`` and users may add ContainerArguments."""
    signal.signal(signal.SIGTERM, on_sigterm)
    progress = Progress()
    try:
        try:
            progress.hyperparameters = parse_hyperparameters(read_json(CONFIG / "hyperparameters.json", {}))
            check_channel(read_json(CONFIG / "inputdataconfig.json", {CHANNEL: {}}))
            resources = read_json(CONFIG / "resourceconfig.json", {})
            progress.host = str(resources.get("current_host", "algo-1"))
            progress.hosts = list(resources.get("hosts", [progress.host]))
            log(f"host {progress.host} of {progress.hosts}, hyperparameters {progress.hyperparameters}")
            points = load_points(DATA)
            progress.rows = len(points)
            train(progress, points)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except Stopped:
        log(f"SIGTERM after {progress.epochs_completed} epochs: saving the model and exiting")
        save(progress, interrupted=True)
        return 0
    except AlgorithmError as exc:
        return fail(str(exc))
    except Exception as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    save(progress, interrupted=False)
    log("training complete")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
