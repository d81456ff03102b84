"""The fixed trainer: on SIGTERM it saves what it has to /opt/ml/model and exits 0 within the grace period.

SageMaker sends SIGTERM to PID 1 on StopTrainingJob and when MaxRuntimeInSeconds expires, then SIGKILL
120 s later; whatever is in /opt/ml/model by then is uploaded as model.tar.gz.
"""

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

stop_requested = False


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    global stop_requested
    stop_requested = True


def save(epoch: int, interrupted: bool) -> None:
    Path("/opt/ml/model/model.json").write_text(json.dumps({"epochs": epoch, "interrupted": interrupted}))


signal.signal(signal.SIGTERM, on_sigterm)
hyperparameters = json.loads(Path("/opt/ml/input/config/hyperparameters.json").read_text())
epochs = int(hyperparameters.get("epochs", "30"))
for epoch in range(1, epochs + 1):
    time.sleep(0.5)
    print(f"epoch {epoch}/{epochs}", flush=True)
    if stop_requested:
        print(f"SIGTERM: saving the model after epoch {epoch}", flush=True)
        save(epoch, interrupted=True)
        sys.exit(0)
save(epochs, interrupted=False)
