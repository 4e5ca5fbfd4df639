"""One entry point for the command line: a data set name or a path -> `LabeledTensors`."""

from __future__ import annotations

import os
from pathlib import Path

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError


def load_dataset(
    dataset: str,
    subset: str = "test",
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> LabeledTensors:
    """Load ``omniglot`` (with its `split`) or a path to an image folder or embedding file.

    Args:
        dataset: ``"omniglot"`` or a path.
        subset: which part of the split to load (``train``, ``val``, ``test``, ...).
        split: Omniglot protocol (``vinyals``, ``lake``, ``random``) or, for an image folder,
            ``"<train>,<val>,<test>"`` class ratios.
        image_size: resize images to this side length (28 for Omniglot by default).
    """
    if dataset == "omniglot":
        from fewshot.data.omniglot import load_omniglot

        return load_omniglot(split or "vinyals", subset, data_dir, image_size or 28, seed=seed)
    path = Path(dataset).expanduser()
    if not path.exists():
        raise DataError(f"data set {dataset!r} is neither 'omniglot' nor an existing path")
    raise DataError(f"cannot read {path}: image folders and embedding files are not supported yet")
