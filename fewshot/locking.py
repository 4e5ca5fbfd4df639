"""One writer at a time: an advisory lock beside the file or folder a command writes.

The lock is ``flock`` on ``<target>.lock``; the kernel releases it when the holder exits, even
after ``kill -9``, so a stale lock file never blocks a later run. A second run on the same
target is refused at once with one line instead of racing the first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fewshot.errors import FewshotError


def lock_path(target: str | os.PathLike[str]) -> Path:
    """``<target>.lock`` beside `target` (a file or a folder)."""
    target = Path(target).expanduser()
    return target.with_name(target.name + ".lock")


@contextmanager
def exclusive_lock(target: str | os.PathLike[str], what: str = "this output") -> Iterator[Path]:
    """Hold the lock of `target` for the block.

    Raises:
        FewshotError: another process holds it (``another fewshot run is writing ...``).
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks; run unlocked
            yield path
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FewshotError(
                f"another fewshot run is writing {what} ({target}); wait for it to finish (lock: {path})"
            ) from None
        yield path
    finally:
        os.close(fd)
