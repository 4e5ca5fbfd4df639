"""Omniglot as a named data set (`fewshot.data.catalog.DATASETS`)."""

from __future__ import annotations

import os

from fewshot.data.catalog import DATASETS
from fewshot.data.tensors import LabeledTensors

# what each split trains on when it does not validate on its own val part
_TRAIN_SUBSET = {"vinyals": "train", "lake": "background", "random": "train"}


@DATASETS.register("omniglot")
class Omniglot:
    """1,623 handwritten characters of 50 alphabets (Lake et al. 2015), with the Vinyals,
    Lake and random splits of `fewshot.data.omniglot.load_omniglot`; each class's group
    (``class_groups``) is its alphabet."""

    name = "omniglot"
    default_split = "vinyals"
    default_subset = "test"
    image_size = 28
    native_size = 105
    takes_transform = False

    def load(
        self,
        subset: str = "test",
        split: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        image_size: int | None = None,
        seed: int = 0,
    ) -> LabeledTensors:
        from fewshot.data.omniglot import load_omniglot

        return load_omniglot(
            split or self.default_split, subset, data_dir, image_size or self.image_size, seed=seed
        )

    def with_rotations(self, split: str | None, rotations: bool | None) -> str:
        """The split name asking for rotated copies as extra classes (``lake+rotations``,
        ``vinyals+no-rotations``); None: the split's own default (vinyals, random: rotations;
        lake: none). Data sets with this method take ``--rotations/--no-rotations``."""
        from fewshot.data.omniglot import split_with_rotations

        return split_with_rotations(split or self.default_split, rotations)

    def train_val_subsets(self, split: str | None, trainval: bool) -> tuple[str, str | None]:
        """Vinyals has a val part (and train+val for the final run); the others hold out classes."""
        from fewshot.data.omniglot import parse_split

        split = parse_split(split or self.default_split)[0]
        if split == "vinyals":
            return ("trainval", None) if trainval else ("train", "val")
        return _TRAIN_SUBSET.get(split, "train"), None
