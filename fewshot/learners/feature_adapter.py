"""CLIP-Adapter's bottleneck MLP, shared by the learner that trains it
(`fewshot.learners.clip_adapter`) and the `Classifier` that `fewshot finetune --strategy
clip-adapter` saves it in (so neither imports the other)."""

from __future__ import annotations

from torch import nn


def bottleneck(dim: int, reduction: int) -> nn.Sequential:
    """CLIP-Adapter's MLP ``(n, d) -> (n, d)``."""
    hidden = max(dim // reduction, 1)
    return nn.Sequential(
        nn.Linear(dim, hidden, bias=False),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, dim, bias=False),
        nn.ReLU(inplace=True),
    )
