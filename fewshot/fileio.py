"""File I/O on the ground floor: atomic writes that a crash cannot leave half-done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fewshot.faults import crash_point


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(
    path: str | os.PathLike[str], payload: bytes, crash_before_replace: str | None = None
) -> Path:
    """Write `payload` to `path` so that a crash leaves either the old file or the new one.

    The payload goes to a hidden ``.<name>.*.tmp`` beside `path`, is synced, then renamed over
    it. `crash_before_replace` names a `fewshot.faults.crash_point` between the two.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if crash_before_replace is not None:
            crash_point(crash_before_replace)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
