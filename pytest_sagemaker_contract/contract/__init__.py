"""The built-in contract suite: one check per clause, collected once per `--sm-image`.

The home of a clause is one module, imported here in suite order (importing registers its checks):
`image.py` (static image checks), `invocation.py` (the request shapes), `outputs.py` (the model and
output archives), `metrics.py` (MetricDefinitions read from the log), `stopping.py` (SIGTERM,
MaxRuntime, checkpoints), `spot.py` (managed spot restarts), `cluster.py` (input modes, hosts, isolation),
`gpu.py` (GPU visibility).
`suite.py` holds the registry, the nodes, `sm_contract` (a `CheckContext` per check) and the per-session
`ImageContext` per image. All of it is internal: the stable API is `pytest_sagemaker_contract.__all__`.
"""

from __future__ import annotations

# Registration by import, in suite order (isort must not sort these).
from . import image  # isort: split

from . import invocation  # isort: split

from . import outputs  # isort: split

from . import metrics  # isort: split

from . import stopping  # isort: split

from . import spot  # isort: split

from . import cluster  # isort: split

from . import gpu  # isort: split

from .suite import (
    CHECKS,
    NOTE_KEY,
    Check,
    CheckContext,
    CheckNote,
    ContractItem,
    ContractModule,
    ImageContext,
    SageMakerContractWarning,
    check,
    sm_contract,
)

__all__ = [
    "CHECKS",
    "NOTE_KEY",
    "Check",
    "CheckContext",
    "CheckNote",
    "ContractItem",
    "ContractModule",
    "ImageContext",
    "SageMakerContractWarning",
    "check",
    "cluster",
    "gpu",
    "image",
    "invocation",
    "metrics",
    "outputs",
    "sm_contract",
    "spot",
    "stopping",
]
