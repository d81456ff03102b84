"""A script-mode training script, as AWS's sagemaker-training toolkit runs it (SAGEMAKER_PROGRAM=train.py).

The toolkit's `train` (PID 1) reads /opt/ml/input/config, resolves every host, exports SM_* variables and
starts this script as `python3 train.py --epochs N --learning_rate R --seconds_per_epoch S`. It fits
y = w*x + b by gradient descent on every CSV of channel `train`, prints one metrics line per epoch
(`epoch 3/10 loss=0.0123`, for MetricDefinitions) and saves model.json to SM_MODEL_DIR. Its SIGTERM
handler saves the model and exits; whether the handler ever runs depends on who forwards SIGTERM to this
process (the toolkit does not: see README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import numpy as np


class Stopped(BaseException):
    """Raised from the SIGTERM handler so the loop (even a sleep) unwinds at once."""


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stopped


def load(channel: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for path in sorted(channel.glob("*.csv")):
        with path.open() as handle:
            rows += [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
    if not rows:
        raise SystemExit(f"no CSV rows under {channel}")
    data = np.array(rows)
    return data[:, 0], data[:, 1]


def save(model_dir: Path, w: float, b: float, epochs_done: int, stopped: bool) -> None:
    model = {"w": w, "b": b, "epochs_completed": epochs_done, "stopped": stopped}
    (model_dir / "model.json").write_text(json.dumps(model))
    print(f"saved model.json after {epochs_done} epoch(s){' (stopped by SIGTERM)' if stopped else ''}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--seconds_per_epoch", type=float, default=0.0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"SIGTERM handler installed; host {os.environ.get('SM_CURRENT_HOST', '?')}", flush=True)
    w = b = 0.0
    done = 0
    try:
        x, y = load(Path(args.train))
        for epoch in range(1, args.epochs + 1):
            error = w * x + b - y
            w -= args.learning_rate * float(np.mean(error * x))
            b -= args.learning_rate * float(np.mean(error))
            loss = float(np.mean((w * x + b - y) ** 2))
            done = epoch
            print(f"epoch {epoch}/{args.epochs} loss={loss:.6f}", flush=True)
            time.sleep(args.seconds_per_epoch)
    except Stopped:
        save(Path(args.model_dir), w, b, done, stopped=True)
        return 0
    save(Path(args.model_dir), w, b, done, stopped=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
