"""Class-disjoint splits of labelled data."""

from __future__ import annotations

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError


def subset_classes(data: LabeledTensors, class_ids: np.ndarray | list[int], name: str) -> LabeledTensors:
    """The items of the given classes, relabelled ``0..len(class_ids)-1`` in the given order."""
    class_ids = np.asarray(class_ids, dtype=np.int64)
    remap = np.full(data.n_classes, -1, dtype=np.int64)
    remap[class_ids] = np.arange(class_ids.size)
    new_labels = torch.from_numpy(remap)[data.labels]
    keep = new_labels >= 0
    return LabeledTensors(
        data.data[keep],
        new_labels[keep],
        [data.class_names[i] for i in class_ids],
        {**data.info, "subset": name},
        None if data.class_groups is None else [data.class_groups[i] for i in class_ids],
    )


def holdout_classes(
    data: LabeledTensors, fraction: float, seed: int = 0
) -> tuple[LabeledTensors, LabeledTensors]:
    """Split classes (not items) into ``(rest, held_out)`` with ``fraction`` held out, seeded."""
    if not 0 < fraction < 1:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    order = np.random.default_rng(seed).permutation(data.n_classes)
    n_held = max(1, round(fraction * data.n_classes))
    if n_held >= data.n_classes:
        raise DataError(f"{data.n_classes} classes are too few to hold out {fraction:.0%} of them")
    held, rest = np.sort(order[:n_held]), np.sort(order[n_held:])
    return subset_classes(data, rest, "train"), subset_classes(data, held, "val")


def join_classes(first: LabeledTensors, second: LabeledTensors, name: str) -> LabeledTensors:
    """The classes of both (class-disjoint) parts as one set; `second`'s ids follow `first`'s."""
    if first.data.shape[1:] != second.data.shape[1:]:
        raise DataError(
            f"cannot join items of shapes {tuple(first.data.shape[1:])} and {tuple(second.data.shape[1:])}"
        )
    return LabeledTensors(
        torch.cat([first.data, second.data]),
        torch.cat([first.labels, second.labels + first.n_classes]),
        [*first.class_names, *second.class_names],
        {**first.info, "subset": name},
        _joined_groups(first, second),
    )


def _joined_groups(first: LabeledTensors, second: LabeledTensors) -> list[str] | None:
    """Both parts' class groups, when both have them."""
    if first.class_groups is None or second.class_groups is None:
        return None
    return [*first.class_groups, *second.class_groups]
