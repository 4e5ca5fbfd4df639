"""Data sets: Omniglot, image folders and embedding files, all as labelled items."""

from fewshot.data.paths import resolve_data_dir
from fewshot.data.tensors import LabeledTensors

__all__ = ["LabeledTensors", "resolve_data_dir"]
