"""Data sets: Omniglot, image folders and embedding files, all as labelled items.

Light to import: `LabeledTensors` (and torch with it) loads on first use, so that commands
like ``fewshot data info`` start instantly.
"""

from __future__ import annotations

import importlib
from typing import Any

from fewshot.data.paths import resolve_data_dir

_LAZY = {
    "LabeledTensors": "fewshot.data.tensors",
    "load_dataset": "fewshot.data.loading",
    "load_omniglot": "fewshot.data.omniglot",
    "load_image_folder": "fewshot.data.folders",
    "load_embeddings": "fewshot.data.embeddings",
    "save_embeddings": "fewshot.data.embeddings",
    "image_transform": "fewshot.data.transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fewshot.data' has no attribute {name!r}")


__all__ = ["resolve_data_dir", *_LAZY]
