"""One family for the errors the local platform raises on purpose.

`PlatformError` is the base a caller catches to handle any of them (a rejected request, an engine
that is unreachable or refuses, an image that is missing, a channel that cannot be staged); anything
else escaping the platform is a bug.
"""

from __future__ import annotations

__all__ = ["PlatformError"]


class PlatformError(Exception):
    """Something the platform refused or could not do; the message says what was wrong and what to do."""
