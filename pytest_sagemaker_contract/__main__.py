"""`python -m pytest_sagemaker_contract serve`: the same as the `sm-contract` console script."""

from __future__ import annotations

import sys

from .api.cli import main

if __name__ == "__main__":
    sys.exit(main())
