"""The target's labelled sample, prepared for each candidate encoder (rank-models, curves).

A named tensor set (Fashion-MNIST, digits, Omniglot) is loaded once at its own size, a
seeded class-stratified sample drawn, and the sample resized to each encoder's input side as
the loader would (bilinear, antialiased when shrinking): 60,000 images are never held at
224 px. An encoder that reads images itself (CLIP) gets the sample as PIL images through its
own ``preprocess``. An image folder is loaded per encoder (its transform) and sampled with the
same indices, so every candidate sees the same items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors


def stratified_indices(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` items of every class (all of a smaller class; all items
    with None), drawn with ``seed``."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(labels.shape[0])
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def take(data: LabeledTensors, idx: np.ndarray | torch.Tensor) -> LabeledTensors:
    """The items ``idx`` of ``data`` (classes and groups kept)."""
    idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    return LabeledTensors(
        data.data[idx], data.labels[idx], data.class_names, dict(data.info), data.class_groups
    )


def class_sample(data: LabeledTensors, classes: int, seed: int) -> LabeledTensors:
    """The items of a seeded sample of ``classes`` classes, relabelled ``0..classes-1`` in
    their original order."""
    from fewshot.errors import FewshotError

    if classes < 2 or classes > data.n_classes:
        raise FewshotError(
            f"--classes {classes}: the data has {data.n_classes} classes (use 2 to {data.n_classes})"
        )
    kept = np.sort(np.random.default_rng(seed).permutation(data.n_classes)[:classes])
    remap = np.full(data.n_classes, -1)
    remap[kept] = np.arange(classes)
    rows = np.flatnonzero(np.isin(data.labels.numpy(), kept))
    groups = None if data.class_groups is None else [data.class_groups[c] for c in kept]
    return LabeledTensors(
        data.data[torch.as_tensor(rows)],
        torch.as_tensor(remap[data.labels.numpy()[rows]]),
        [data.class_names[c] for c in kept],
        dict(data.info),
        groups,
    )


def resized(data: LabeledTensors, side: int) -> LabeledTensors:
    """Images ``(n, C, h, w)`` resized to ``side`` as `fewshot.data.labelled.to_items` does."""
    import torch.nn.functional as F

    if data.data.ndim != 4 or tuple(data.data.shape[-2:]) == (side, side):
        return data
    shrink = data.data.shape[-1] > side
    x = F.interpolate(data.data, size=(side, side), mode="bilinear", antialias=shrink).clamp_(0, 1)
    return LabeledTensors(
        x, data.labels, data.class_names, {**data.info, "image_size": side}, data.class_groups
    )


@dataclass
class Target:
    """Where the target's labelled items come from, and how many per class to use."""

    dataset: str
    subset: str = "all"
    split: str | None = None
    data_dir: Any = None
    seed: int = 0
    per_class: int | None = None
    image_size: int | None = None  # for encoders built to the data (Conv-4) on a folder
    classes: int | None = None  # a seeded sample of this many classes (None: every class)

    def __post_init__(self) -> None:
        from fewshot.data.catalog import named_dataset

        self.named = named_dataset(self.dataset)
        if self.subset == "all" and self.named is not None:  # as `fewshot finetune`: its training part
            self.subset = getattr(self.named, "finetune_subset", self.named.default_subset)
        self._base: LabeledTensors | None = None

    @property
    def tensor_set(self) -> bool:
        return self.named is not None and not self.named.takes_transform

    def base(self) -> LabeledTensors:
        """A named tensor set's sample at its own size (loaded once)."""
        if self._base is None:
            from fewshot.build import load_data

            data = load_data(self.dataset, self.subset, self.split, self.data_dir, None, self.seed)
            self._base = self._sample(data)
        return self._base

    def build(self, spec: str | None, device, options: dict | None = None, seed: int = 0):
        """The `EncoderSource` ``spec`` names; one built to the data's shape is sized from the
        (tensor set's) sample."""
        from fewshot.build import build_encoder, sized_by_data

        shape = tuple(self.base().data.shape) if self.tensor_set and sized_by_data(spec) else None
        return build_encoder(spec, device, options, data_shape=shape, image_size=self.image_size, seed=seed)

    def prepare(self, source, data: LabeledTensors) -> LabeledTensors:
        """A tensor set's items (from `base`) as ``source``'s encoder reads them."""
        if not self.tensor_set:
            return data
        from fewshot.build.data import reads_pil, through_preprocess

        if reads_pil(source.encoder):
            return through_preprocess(data, source.encoder.preprocess)
        side = (source.preprocessing or {}).get("image_size") or self.named.image_size
        return resized(data, int(side))

    def pool(self, source) -> LabeledTensors:
        """Every sampled item: a tensor set's at its own size (`prepare` them), a folder's
        loaded as ``source`` expects."""
        if self.tensor_set:
            return self.base()
        from fewshot.build import load_for_encoder

        data = load_for_encoder(source, self.dataset, self.subset, self.split, self.data_dir, self.seed)
        return self._sample(data)

    def _sample(self, data: LabeledTensors) -> LabeledTensors:
        if self.classes is not None:
            data = class_sample(data, self.classes, self.seed)
        return take(data, stratified_indices(data.labels.numpy(), self.per_class, self.seed))

    def source_and_items(self, spec: str | None, device, options: dict | None = None, seed: int = 0):
        """``(EncoderSource, LabeledTensors)``: the encoder ``spec`` names and the sample
        prepared for it."""
        source = self.build(spec, device, options, seed)
        return source, self.prepare(source, self.pool(source))
