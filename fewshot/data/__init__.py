"""Data sets: Omniglot, image folders and embedding files, all as labelled items.

Light to import: `LabeledTensors` (and torch with it) loads on first use, so that commands
like ``fewshot data info`` start instantly.
"""

from __future__ import annotations

from fewshot.data.paths import resolve_data_dir
from fewshot.lazy import lazy_attributes

_LAZY = {
    "LabeledTensors": "fewshot.data.tensors",
    "load_dataset": "fewshot.data.loading",
    "load_omniglot": "fewshot.data.omniglot",
    "load_image_folder": "fewshot.data.folders",
    "load_embeddings": "fewshot.data.embeddings",
    "save_embeddings": "fewshot.data.embeddings",
    "image_transform": "fewshot.data.transforms",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = ["resolve_data_dir", *_LAZY]
