"""Named data sets: a registry, so that a new data set is one module plus its test (a class
in ``fewshot/data/<name>.py`` decorated ``@DATASETS.register("name")``).

A name in `DATASETS` (``omniglot``) is loaded by its class; anything else given as
``--dataset`` is a path (an image folder or an embedding file, see `fewshot.data.loading`).
A named data set's class declares what commands need to know of it:

- ``load(subset, split, data_dir, image_size, seed) -> LabeledTensors``;
- ``default_split``, ``default_subset`` (evaluation's), ``image_size`` (its native side);
- ``takes_transform``: False when items come preprocessed (a PIL transform cannot apply);
- ``train_val_subsets(split, trainval) -> (train_subset, val_subset | None)``: what
  `fewshot train` trains and validates on (None: hold out 10% of the training classes).
"""

from __future__ import annotations

from fewshot.registry import Registry

DATASETS: Registry = Registry("data set")
# every `@DATASETS.register("name")` class of fewshot.data, found without importing it
DATASETS.discover("fewshot.data", "DATASETS.register")


def named_dataset(name: str):
    """The class of the data set registered as ``name``, or None for a path."""
    return DATASETS.get(name)() if name in DATASETS else None


__all__ = ["DATASETS", "named_dataset"]
