"""Small labelled image sets held as arrays (Fashion-MNIST, digits): their two kinds of split.

A subclass of `ArraySet` gives its class names, its native side and `arrays(data_dir, seed)`;
this module turns that into the named-data-set protocol of `fewshot.data.catalog`:

- the **item split** (``item_split``: ``official`` for Fashion-MNIST, ``items`` for digits),
  every class in every part, for ordinary classification and fine-tuning. Subsets ``train``
  and ``test`` (the set's own labelled parts), ``all``, and for validation ``val`` (a seeded,
  stratified ``val_fraction`` of ``train``) with ``fit`` (``train`` less ``val``);
- **class-disjoint** few-shot splits: ``"<train>,<val>,<test>"`` class ratios as for image
  folders, seeded, or ``classes`` (= `CLASS_RATIOS`: 3, 2 and 5 of 10 classes, so that
  5-way test episodes and 2-way validation work); every item of a class goes with it.
  Subsets ``train``, ``val``, ``test``, ``trainval`` and ``all``.

Items are float32 ``(n, 1, image_size, image_size)`` in ``[0, 1]``, resized with
antialiasing when ``image_size`` differs from the native side.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from fewshot.errors import DataError

if TYPE_CHECKING:
    from fewshot.data.tensors import LabeledTensors

CLASS_SPLIT = "classes"
CLASS_RATIOS = "0.3,0.2,0.5"
ITEM_SUBSETS = ("train", "test", "all", "fit", "val")
CLASS_SUBSETS = ("train", "val", "test", "trainval", "all")


def stratified_pick(labels: np.ndarray, among: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded bool mask picking ``fraction`` of the items in ``among`` of every class
    (rounded, at least one of a class with two or more items)."""
    rng = np.random.default_rng(seed)
    picked = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels[among]):
        rows = np.flatnonzero(among & (labels == c))
        n = min(len(rows) - 1, max(1, round(fraction * len(rows))))
        picked[rng.permutation(rows)[:n]] = True
    return picked


def to_items(images: np.ndarray, image_size: int, scale: float, chunk: int = 4096):
    """``(n, H, W)`` pixel values in ``0..scale`` -> float32 ``(n, 1, s, s)`` in ``[0, 1]``."""
    import torch
    import torch.nn.functional as F

    n, side = images.shape[0], images.shape[-1]
    out = torch.empty(n, 1, image_size, image_size)
    for start in range(0, n, chunk):
        part = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk]))
        part = part.to(torch.float32).div_(scale).unsqueeze(1)
        if side != image_size or images.shape[-2] != image_size:
            part = F.interpolate(part, size=(image_size, image_size), mode="bilinear", antialias=True)
        out[start : start + chunk] = part.clamp_(0.0, 1.0)
    return out


class ArraySet:
    """Base of the array data sets; see the module docstring for the splits and subsets."""

    name = ""
    class_names: tuple[str, ...] = ()
    item_split = "items"
    default_split = "items"  # = item_split
    default_subset = "test"  # few-shot evaluation: every class of the test items
    finetune_subset = "train"  # what fine-tuning should train on when not told
    image_size = 28
    native_size = 28
    takes_transform = False
    channels = 1
    pixel_scale = 255.0
    val_fraction = 0.1  # of the item split's train part, for validation

    def arrays(self, data_dir, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(images (n, H, W), labels (n,) int64, in_train (n,) bool)``: every item, and
        which of them the item split puts in ``train``."""
        raise NotImplementedError

    def load(
        self,
        subset: str = "test",
        split: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        image_size: int | None = None,
        seed: int = 0,
    ) -> LabeledTensors:
        """One subset of a split as `LabeledTensors` ``(n, 1, image_size, image_size)``."""
        split = split or self.default_split
        ratios = self._check_request(subset, split, image_size)
        size = image_size or self.image_size
        images, labels, in_train = self.arrays(data_dir, seed)
        keep, class_ids = self._select(subset, ratios, labels, in_train, seed)
        remap = np.full(len(self.class_names), -1, dtype=np.int64)
        remap[class_ids] = np.arange(len(class_ids))
        import torch

        from fewshot.data.tensors import LabeledTensors

        return LabeledTensors(
            to_items(images[keep], size, self.pixel_scale),
            torch.from_numpy(remap[labels[keep]]),
            [self.class_names[i] for i in class_ids],
            {"dataset": self.name, "split": split, "subset": subset, "image_size": size},
        )

    def _select(self, subset, ratios, labels, in_train, seed) -> tuple[np.ndarray, list[int]]:
        """``(mask of the items kept, class ids kept in ascending order)``."""
        if ratios is None:
            return self._item_part(subset, labels, in_train, seed), list(range(len(self.class_names)))
        class_ids = self.class_part(subset, ratios, seed)
        return np.isin(labels, class_ids), class_ids

    def _check_request(self, subset: str, split: str, image_size: int | None) -> str | None:
        """Refuse a bad split, subset or size before any file is read; the class ratios or None."""
        ratios = self.split_ratios(split)
        subsets = ITEM_SUBSETS if ratios is None else CLASS_SUBSETS
        if subset not in subsets:
            raise DataError(
                f"unknown subset {subset!r} of the {split} split of {self.name}: "
                f"choose one of {', '.join(subsets)}"
            )
        if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
            raise DataError(f"image size must be a positive whole number, got {image_size!r}")
        return ratios

    def split_ratios(self, split: str) -> str | None:
        """None for the item split, else the class ratios of a class-disjoint split."""
        from fewshot.data.folders import parse_ratios

        if split == self.item_split:
            return None
        ratios = CLASS_RATIOS if split == CLASS_SPLIT else split
        try:
            parse_ratios(ratios)
        except DataError:
            raise DataError(
                f"unknown split {split!r} of {self.name}: choose {self.item_split} (labelled train/test), "
                f"{CLASS_SPLIT} or class ratios train,val,test such as {CLASS_RATIOS}"
            ) from None
        return ratios

    def class_parts(self, ratios: str, seed: int) -> dict[str, list[int]]:
        """Class ids (ascending) of the ``train``/``val``/``test`` parts of a ratio split."""
        from fewshot.data.folders import split_classes

        index = {name: i for i, name in enumerate(self.class_names)}
        parts = split_classes(list(self.class_names), ratios, seed)
        return {part: sorted(index[n] for n in names) for part, names in parts.items()}

    def class_part(self, subset: str, ratios: str, seed: int) -> list[int]:
        parts = self.class_parts(ratios, seed)
        if subset in ("all", "trainval"):
            wanted = ("train", "val", "test") if subset == "all" else ("train", "val")
            return sorted(i for part in wanted for i in parts[part])
        if not parts[subset]:
            raise DataError(f"the {subset} part of split {ratios} has no class: give it a non-zero ratio")
        return parts[subset]

    def _item_part(self, subset: str, labels: np.ndarray, in_train: np.ndarray, seed: int) -> np.ndarray:
        if subset == "all":
            return np.ones(labels.shape[0], dtype=bool)
        if subset in ("train", "test"):
            return in_train if subset == "train" else ~in_train
        val = stratified_pick(labels, in_train, self.val_fraction, seed)
        return val if subset == "val" else in_train & ~val

    def train_val_subsets(self, split: str | None, trainval: bool) -> tuple[str, str | None]:
        """Item split: ``fit`` and ``val`` (``train`` for the final run); a class split: its
        ``train`` and ``val`` parts (``trainval`` for the final run)."""
        split = split or self.default_split
        ratios = self.split_ratios(split)
        if ratios is None:
            return ("train", None) if trainval else ("fit", "val")
        if trainval:
            return "trainval", None
        n_val = len(self.class_parts(ratios, 0)["val"])
        if n_val < 2:
            raise DataError(
                f"split {split} of {self.name} gives the val part {n_val} class(es), validation needs 2: "
                f"use --split {CLASS_SPLIT} ({CLASS_RATIOS}) or --trainval"
            )
        return "train", "val"
