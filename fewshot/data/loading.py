"""One entry point for the command line: a data set name or a path -> `LabeledTensors`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError

EMBEDDING_SUFFIXES = (".npz",)


def load_dataset(
    dataset: str,
    subset: str = "test",
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    seed: int = 0,
    transform: Callable | None = None,
) -> LabeledTensors:
    """Load ``omniglot`` (with its `split`), an image folder, or an embedding file.

    Args:
        dataset: ``"omniglot"``, a folder with one subfolder per class, or an embedding file
            (``.npz`` written by `fewshot.data.embeddings.save_embeddings`).
        subset: which part to load: Omniglot ``train``/``val``/``trainval``/``test`` (vinyals),
            ``background``/``evaluation`` (lake), ``train``/``test`` (random); image folders
            and embedding files ``train``/``val``/``test`` of a class split, or ``all``.
        split: Omniglot protocol (``vinyals``, ``lake``, ``random``) or, for an image folder or
            embedding file, ``"<train>,<val>,<test>"`` class ratios (default ``0.6,0.2,0.2``).
        data_dir: the data directory for Omniglot (see `fewshot.data.paths.resolve_data_dir`).
        image_size: resize images to this side length (Omniglot: 28; folders: 84).
        seed: the Omniglot random split's shuffle, or the class shuffle of a folder split; use
            the same seed for training and testing.
        transform: image folders only: PIL image -> tensor ``(C, H, W)`` (default RGB resized
            to `image_size`; see `fewshot.data.transforms.image_transform`).
    """
    if dataset == "omniglot":
        if transform is not None:
            raise DataError("a transform applies to image folders only; Omniglot is preprocessed")
        from fewshot.data.omniglot import load_omniglot

        return load_omniglot(split or "vinyals", subset, data_dir, image_size or 28, seed=seed)
    path = Path(dataset).expanduser()
    if not path.exists():
        raise DataError(
            f"data set {dataset!r} is neither 'omniglot' nor an existing folder or embedding file"
        )
    if path.is_dir():
        from fewshot.data.folders import load_image_folder

        return load_image_folder(path, subset, split, seed, transform=transform, image_size=image_size)
    if path.suffix.lower() in EMBEDDING_SUFFIXES:
        from fewshot.data.embeddings import load_embeddings

        data = load_embeddings(path)
        if subset == "all":
            return data
        from fewshot.data.folders import split_classes
        from fewshot.data.splits import subset_classes

        if subset not in ("train", "val", "test"):
            raise DataError(f"unknown subset {subset!r} of an embedding file: choose train, val, test or all")
        parts = split_classes(data.class_names, split, seed)
        index = {name: i for i, name in enumerate(data.class_names)}
        if not parts[subset]:
            raise DataError(f"the {subset} part of split {split} has no class: give it a non-zero ratio")
        chosen = subset_classes(data, [index[n] for n in parts[subset]], subset)
        chosen.info["split"] = split
        return chosen
    raise DataError(f"cannot read {path}: give a folder of class subfolders or an embedding file (.npz)")
