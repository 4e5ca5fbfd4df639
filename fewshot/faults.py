"""Fault injection for the kill -9 tests: named crash points inside every durable writer.

Writers call ``crash_point("label.after-place")`` between the steps whose order matters
(a file placed, a journal line synced, a state renamed). Normally this does nothing. With
``FEWSHOT_CRASH_AT=N`` in the environment the process kills itself with SIGKILL at the N-th
crash point it reaches (counting from 1), exactly as ``kill -9`` would: no ``finally``, no
flush, no atexit. ``FEWSHOT_CRASH_LOG=FILE`` appends the name of every point reached, so a
test can count the points of a clean run and then kill at each of them in turn.
"""

from __future__ import annotations

import os
import signal

_AT = int(os.environ.get("FEWSHOT_CRASH_AT", "0") or 0)
_LOG = os.environ.get("FEWSHOT_CRASH_LOG")
_count = 0


def crash_point(name: str) -> None:
    """Die here with SIGKILL when this is the ``FEWSHOT_CRASH_AT``-th point reached."""
    global _count
    if not _AT and not _LOG:
        return
    _count += 1
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as handle:
            handle.write(f"{_count}\t{name}\n")
    if _count == _AT:
        os.kill(os.getpid(), signal.SIGKILL)
