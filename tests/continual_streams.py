"""Tiny synthetic streams for the continual-learning tests: class c is a bright 4x4 square at
its own place on a noisy 16x16 image, so a small Conv-4 learns each class in a few steps."""

from __future__ import annotations

import torch

from fewshot.data.tensors import LabeledTensors


def squares(classes: int = 6, per_class: int = 24, seed: int = 0) -> LabeledTensors:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    x = 0.3 * torch.rand(len(labels), 1, 16, 16, generator=g)
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 4)
        x[i, 0, 1 + 5 * r : 5 + 5 * r, 1 + 4 * col : 4 + 4 * col] += 0.7
    return LabeledTensors(x.clamp(0, 1), labels, [f"c{i}" for i in range(classes)], {"dataset": "squares"})


def encoder(seed: int = 0):
    from fewshot.encoders.conv4 import Conv4

    torch.manual_seed(seed)
    return Conv4(in_channels=1, hidden=16, image_size=16)
