"""Where data sets live: ``--data-dir``, then ``$FEWSHOT_DATA_DIR``, then a user cache folder."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FEWSHOT_DATA_DIR"


def default_cache_dir() -> Path:
    """The per-user cache folder (``$XDG_CACHE_HOME/fewshot`` or ``~/.cache/fewshot``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fewshot"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the explicit argument, else ``$FEWSHOT_DATA_DIR``, else the cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return default_cache_dir() / "data"
