"""A trainer with no SIGTERM handler: as PID 1 it ignores SIGTERM and loses its work at SIGKILL.

The failing half of README's "write a SIGTERM handler test-first" section; python-good/ is the fix.
"""

import json
import time
from pathlib import Path

hyperparameters = json.loads(Path("/opt/ml/input/config/hyperparameters.json").read_text())
epochs = int(hyperparameters.get("epochs", "30"))
for epoch in range(1, epochs + 1):
    time.sleep(0.5)
    print(f"epoch {epoch}/{epochs}", flush=True)
Path("/opt/ml/model/model.json").write_text(json.dumps({"epochs": epochs}))
