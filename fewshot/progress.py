"""Progress bars by the usual convention: on when stderr is a terminal, off in logs and pipes.

Commands take ``--progress/--no-progress`` with a default of None ("auto"); the library's
``progress`` arguments accept True (force on), False (off) or None (auto).
"""

from __future__ import annotations

import sys


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a bar: `progress` when given, else whether stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(progress: bool | None = None, **kwargs):
    """A tqdm bar (disabled unless `show_progress`); nested bars are cleared when done."""
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(disable=not show_progress(progress), **kwargs)
