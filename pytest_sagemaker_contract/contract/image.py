"""Static checks (contract §1 invocation, §3 reserved /opt/ml, §8 no bundled driver): config and filesystem only."""

from __future__ import annotations

from ..image_facts import STATIC_CHECKS, CheckOutcome
from .suite import CheckContext, check, warn

_CLAUSES = {
    "SM-IMG-EXEC-FORM": (
        "§1 ENTRYPOINT is exec form",
        "PID 1 is the program, so SIGTERM reaches it and `train` is passed",
    ),
    "SM-IMG-NO-TINI": ("§1 tini is not the entrypoint", "no tini to be confused by the `train` argument"),
    "SM-IMG-TRAIN-ON-PATH": (
        "§1 `train` on PATH without ENTRYPOINT",
        "`docker run IMAGE train` can exec `train`",
    ),
    "SM-IMG-OPT-ML-EMPTY": (
        "§1/§3 nothing shipped under the platform's /opt/ml dirs",
        "nothing the image ships is hidden by the /opt/ml mounts",
    ),
    "SM-IMG-NO-DRIVER": (
        "§8 no bundled NVIDIA driver",
        "the host's driver, not a bundled one, is what CUDA loads",
    ),
}


def _verdict(sm_contract: CheckContext, outcome: CheckOutcome) -> None:
    warn(sm_contract.item, outcome.warnings)
    if outcome.outcome == "failed":
        sm_contract.fail(outcome.message)
    elif outcome.outcome == "skipped":
        sm_contract.skip(outcome.message, structural=outcome.message.startswith("not applicable"))
    sm_contract.says(outcome.message)


def _static(check_id: str) -> None:
    clause, summary = _CLAUSES[check_id]

    def run_static(sm_contract: CheckContext) -> None:
        _verdict(sm_contract, STATIC_CHECKS[check_id](sm_contract.facts()))

    run_static.__name__ = run_static.__qualname__ = check_id.lower().replace("-", "_")
    run_static.__doc__ = summary
    check(check_id, clause, summary)(run_static)


for _id in _CLAUSES:
    _static(_id)
