"""Where the JSON report goes: checked before the run (a report that cannot be written fails in a second, not
after an hour of training), and written whole or not at all.

Kept apart from report.py, which imports the contract suite: settings.py checks the path while options are read.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .spec import file_kind

__all__ = ["report_path_problem", "write_report"]


def report_path_problem(path: Path) -> str | None:
    """Why the report cannot be written to `path`, with the fix, or None: the directory must exist and take a
    new file (tried, not guessed from permission bits: root ignores them, a read-only mount does not), and
    the path itself must be absent or a regular file (writing a FIFO would block the end of the session)."""
    parent = path.parent
    if not parent.exists():
        return f"directory {parent} does not exist; create it first"
    if not parent.is_dir():
        return f"{parent} is not a directory; name a file in a directory"
    try:
        mode: int | None = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        return f"cannot look at it ({exc.strerror}); name a file in a writable directory"
    if mode is not None and stat.S_ISDIR(mode):
        return f"is a directory; name a file, e.g. {path / 'sm-report.json'}"
    if mode is not None and not stat.S_ISREG(mode):
        return f"is {file_kind(mode)}; name a regular file, e.g. sm-report.json"
    try:
        fd, probe = tempfile.mkstemp(prefix=".sm-report-probe-", dir=parent)
    except OSError as exc:
        return f"cannot create files in {parent} ({exc.strerror}); name a file in a writable directory"
    os.close(fd)
    os.unlink(probe)
    return None


def write_report(path: Path, text: str) -> None:
    """Write `text` to a new file beside `path`, then rename it over `path`: a reader sees the old report or the
    new one, never half of one, and a link at `path` is replaced, not followed. Raises OSError."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would change it for every thread meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
