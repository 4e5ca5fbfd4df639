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
    from fewshot.data.catalog import DATASETS, named_dataset

    named = named_dataset(dataset)
    if named is not None:
        if transform is not None and not named.takes_transform:
            raise DataError(f"a transform applies to image folders only; {dataset} is preprocessed")
        return named.load(subset, split, data_dir, image_size, seed)
    path = Path(dataset).expanduser()
    if not path.exists():
        names = ", ".join(DATASETS.names())
        raise DataError(
            f"data set {dataset!r} is neither a named data set ({names}) "
            "nor an existing folder or embedding file"
        )
    if path.is_dir():
        from fewshot.data.folders import load_image_folder

        return load_image_folder(path, subset, split, seed, transform=transform, image_size=image_size)
    if path.suffix.lower() in EMBEDDING_SUFFIXES:
        return _embedding_subset(path, subset, split, seed)
    raise DataError(f"cannot read {path}: give a folder of class subfolders or an embedding file (.npz)")


def _embedding_subset(path: Path, subset: str, split: str | None, seed: int) -> LabeledTensors:
    from fewshot.data.embeddings import load_embeddings
    from fewshot.data.folders import split_classes
    from fewshot.data.splits import subset_classes

    data = load_embeddings(path)
    if subset == "all":
        return data
    if subset not in ("train", "val", "test"):
        raise DataError(f"unknown subset {subset!r} of an embedding file: choose train, val, test or all")
    parts = split_classes(data.class_names, split, seed)
    index = {name: i for i, name in enumerate(data.class_names)}
    if not parts[subset]:
        raise DataError(f"the {subset} part of split {split} has no class: give it a non-zero ratio")
    chosen = subset_classes(data, [index[n] for n in parts[subset]], subset)
    chosen.info["split"] = split
    return chosen


def is_embedding_file(dataset: str) -> bool:
    """Whether ``dataset`` names an embedding file (features: nothing to embed)."""
    from fewshot.data.catalog import DATASETS

    return dataset not in DATASETS and Path(dataset).suffix.lower() in EMBEDDING_SUFFIXES


def default_subset(dataset: str, otherwise: str = "all") -> str:
    """The part a command uses when not told: a named set's (Omniglot: test), else ``otherwise``."""
    from fewshot.data.catalog import named_dataset

    named = named_dataset(dataset)
    return named.default_subset if named is not None else otherwise


def load_train_val(
    dataset: str,
    split: str | None = None,
    trainval: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> tuple[LabeledTensors, LabeledTensors | None]:
    """What `fewshot train` trains and validates on: ``(train, val)``.

    The split's own val part where it has one, else 10% of the training classes held out
    (seeded). ``trainval``: train on both, no validation (val is None).
    """
    from fewshot.data.catalog import named_dataset
    from fewshot.data.splits import holdout_classes, join_classes

    named = named_dataset(dataset)
    if named is not None:
        train_subset, val_subset = named.train_val_subsets(split, trainval)
        train = load_dataset(dataset, train_subset, split, data_dir, image_size, seed)
        val = load_dataset(dataset, val_subset, split, data_dir, image_size, seed) if val_subset else None
    else:
        train = load_dataset(dataset, "train", split, data_dir, image_size, seed)
        try:
            val = load_dataset(dataset, "val", split, data_dir, image_size, seed)
        except DataError:
            val = None
        if trainval and val is not None:
            return join_classes(train, val, "trainval"), None
    if val is None and not trainval:
        train, val = holdout_classes(train, 0.1, seed)
    return train, val
