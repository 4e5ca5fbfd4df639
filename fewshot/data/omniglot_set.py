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
    Lake and random splits of `fewshot.data.omniglot.load_omniglot`."""

    name = "omniglot"
    default_split = "vinyals"
    default_subset = "test"
    image_size = 28
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

    def train_val_subsets(self, split: str | None, trainval: bool) -> tuple[str, str | None]:
        """Vinyals has a val part (and train+val for the final run); the others hold out classes."""
        split = split or self.default_split
        if split == "vinyals":
            return ("trainval", None) if trainval else ("train", "val")
        return _TRAIN_SUBSET.get(split, "train"), None
