"""The platform's own helper image, for the engine data path: a static busybox FROM scratch, built on the
engine itself from this machine's busybox (no registry is needed, none is assumed).

Pipe mode needs a process inside the engine that writes each epoch's FIFO while the training container
reads it; the image under test may have no shell. A helper container of this image shares the job
container's /opt/ml/input volume (VolumesFrom) and runs `cat > <channel>_<epoch>` with its stdin fed
from this process through the exec API (pipes.EngineFifoWriter).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

from .engine import Engine

__all__ = ["HELPER_REPOSITORY", "helper_image", "is_static", "static_busybox"]

HELPER_REPOSITORY = "sm-contract/helper"
_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def is_static(path: Path) -> bool:
    """An ELF executable without a program interpreter (its PT_INTERP would name ld-linux or ld-musl)."""
    try:
        head = path.read_bytes()[:8192]
    except OSError:
        return False
    return head.startswith(b"\x7fELF") and b"ld-linux" not in head and b"ld-musl" not in head


def static_busybox() -> Path | None:
    """This machine's statically linked busybox (Debian's busybox-static), or None."""
    found = shutil.which("busybox")
    for candidate in (*_CANDIDATES, *((found,) if found else ())):
        path = Path(candidate)
        if is_static(path):
            return path
    return None


def helper_image(engine: Engine) -> tuple[str | None, str]:
    """The helper image's tag on `engine` (built there once per busybox binary), or None and why not."""
    busybox = static_busybox()
    if busybox is None:
        return None, "no statically linked busybox on this machine to build the helper from (install busybox-static)"
    binary = busybox.read_bytes()
    tag = f"{HELPER_REPOSITORY}:{hashlib.sha256(binary).hexdigest()[:12]}"
    if engine.has_image(tag):
        return tag, f"helper image {tag}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\n"
        for name, data, mode in (("Dockerfile", dockerfile, 0o644), ("busybox", binary, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        for line in engine.build_image(context, tag):
            for part in line.decode(errors="replace").splitlines():
                message = json.loads(part) if part.strip().startswith("{") else {}
                if "error" in message:
                    return None, f"the engine could not build the helper image: {str(message['error']).strip()}"
    except Exception as exc:
        return None, f"the engine could not build the helper image: {exc}"
    return tag, f"helper image {tag} built"
