"""§3/§6 What a run's model holds against what the job expects: one rule for every check that looks at it.

Pure functions over a finished job's result, so SM-RUN-*, SM-OUT-MODEL, the stop checks and the
"blocked by SM-RUN-DEFAULT" pointer all say the same thing about the same model.
"""

from __future__ import annotations

import fnmatch

from ..platform import TrainingJobResult

__all__ = ["model_problem", "model_verdict", "written_elsewhere"]


def model_problem(files: list[str], globs: list[str], links: list[str] | None = None) -> str | None:
    """Why the model files miss the expectation (`--sm-expect-model`), or None when they meet it.

    `links` (`name -> target`) are the model's symbolic links: kept as links, they are no model file."""
    if not globs:
        if not files and links:
            return (
                f"the model directory /opt/ml/model held only symbolic links ({', '.join(links[:3])}): "
                "model.tar.gz keeps a link as a link (as SageMaker's tar does), so it holds no model bytes"
            )
        return None if files else "the model directory /opt/ml/model was empty"
    missing = [g for g in globs if not fnmatch.filter(files, g)]
    if missing:
        shown = ", ".join(files[:10]) or "nothing"
        return f"no model file matches {', '.join(missing)} (the model held: {shown})"
    return None


def written_elsewhere(result: TrainingJobResult) -> str:
    """Where the image wrote files when its model directory stayed empty: the usual cause, named."""
    found = sorted({f for h in result.hosts for f in h.written_elsewhere})
    if not found:
        return ""
    return f" (the image wrote {', '.join(found[:5])}; SageMaker uploads only /opt/ml/model)"


def model_verdict(result: TrainingJobResult, globs: list[str]) -> str | None:
    """What is wrong with the run's model (and where the image wrote instead); None when it meets `globs`."""
    problem = model_problem(result.model_files, globs, result.model_links)
    return f"{problem}{written_elsewhere(result)}" if problem else None
